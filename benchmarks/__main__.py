"""`make bench`: every benchmark, one table each; JSON copies under benchmarks/results/."""

from benchmarks import api, backfill, history, ingest_api, ingest_csv

if __name__ == "__main__":
    csv = ingest_csv.main()
    first_load = next(row for row in csv if row["case"] == "first load")
    ingest_api.main()
    backfill.main(first_load["rows_per_s"])
    api.main()
    history.main()
