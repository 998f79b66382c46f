"""`make bench`: every benchmark, one table each; JSON copies under benchmarks/results/."""

from benchmarks import api, history, ingest_api, ingest_csv

if __name__ == "__main__":
    ingest_csv.main()
    ingest_api.main()
    api.main()
    history.main()
