"""Ray job: recognise emotions in a corpus (the same function as `raymer recognize`).

    python jobs/recognize_corpus.py s3://bucket/calls/ --checkpoint s3://bucket/runs/compare \
        --output s3://bucket/runs/recognize --config configs/recognize/cluster.yaml [key=value ...]
"""

import sys

from raymer.cli import main

if __name__ == "__main__":
    sys.exit(main(["recognize", *sys.argv[1:]]))
