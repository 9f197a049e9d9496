"""Ray job: extract features from a corpus (the same function as `raymer extract`).

    python jobs/extract_features.py --config configs/extract/sample.yaml \
        --input s3://bucket/corpus/manifest.csv --output s3://bucket/runs/extract [key=value ...]
"""

import sys

from raymer.cli import main

if __name__ == "__main__":
    sys.exit(main(["extract", *sys.argv[1:]]))
