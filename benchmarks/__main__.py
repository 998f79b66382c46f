"""`make bench`: every benchmark, one table each; JSON copies under benchmarks/results/."""

from benchmarks import ingest_csv

if __name__ == "__main__":
    ingest_csv.main()
