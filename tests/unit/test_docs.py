"""The README, CI script and --help stay true to the code."""

from pathlib import Path

from raymer.cli import parse_args
from raymer.contract.schema import schema_markdown

ROOT = Path(__file__).parents[2]


def test_readme_documents_the_schema_exactly():
    assert schema_markdown() in (ROOT / "README.md").read_text()


def test_readme_two_commands_and_ci():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_commands_exist():
    for argv in (
        ["extract", "--input", "a", "--output", "b"],
        ["corpus", "synth", "--output", "x"],
        ["train", "--features", "f", "--output", "o"],
        ["evaluate", "--checkpoint", "c", "--features", "f", "--output", "o"],
        ["compare", "--features", "f", "--output", "o"],
        ["crossval", "--features", "f", "--output", "o", "--modalities", "fusion,text"],
        ["serve", "--checkpoint", "c", "--port", "8001", "--once", "--predict", "a.wav"],
        ["predict", "a.wav", "--url", "http://127.0.0.1:8000", "--json"],
        ["listen", "call.wav", "--no-pace", "--chunk-ms", "250", "--no-interim", "--json"],
        ["listen", "--mic", "--seconds", "30"],
        ["corpus", "prepare", "manifest", "data/train-*.parquet", "--output", "m.csv"],
        ["submit", "extract", "--address", "http://h:8265", "--input", "i", "--output", "o"],
        ["submit", "train", "--features", "f", "--output", "o", "optim.epochs=2"],
        ["submit", "serve", "--checkpoint", "s3://b/c", "--host", "0.0.0.0", "--no-wait"],
        ["jobs", "logs", "raysubmit_1", "--follow", "--address", "http://h:8265"],
        ["jobs", "list", "--json"],
        ["corpus", "prepare", "iemocap", "/data/IEMOCAP", "--output", "m.csv"],
        ["copy", "data/sample", "s3://b/corpus"],
        ["recognize", "calls/", "--checkpoint", "c", "--output", "o", "segment.chunk_s=120"],
        ["submit", "recognize", "--input", "s3://b/calls", "--checkpoint", "c", "--output", "o"],
    ):
        assert parse_args(argv).func


def test_job_scripts_and_configs_named_in_docs_exist():
    readme = (ROOT / "README.md").read_text() + (ROOT / "CONTRIBUTING.md").read_text()
    for rel in (
        "jobs/extract_features.py",
        "jobs/recognize_corpus.py",
        "configs/recognize/sample.yaml",
        "configs/recognize/cluster.yaml",
        "cluster/rayjob-recognize.yaml",
        "benchmarks/driver_memory.py",
        "configs/extract/sample.yaml",
        "configs/extract/gpu.yaml",
        "configs/train/sample.yaml",
        "configs/train/finetune.yaml",
        "benchmarks/extract_throughput.py",
        "benchmarks/train_scaling.py",
        "benchmarks/serve_load.py",
        "benchmarks/live_latency.py",
        "benchmarks/portable_runtime.py",
        "requirements-runtime.txt",
        "configs/serve/local.yaml",
        "cluster/serve_config.yaml",
        "cluster/rayservice.yaml",
        "jobs/deploy_service.py",
        "docs/benchmarks.md",
    ):
        assert rel in readme and (ROOT / rel).exists(), rel


def test_cluster_doc_names_files_that_exist():
    doc = (ROOT / "docs" / "cluster.md").read_text() + (ROOT / "cluster" / "README.md").read_text()
    assert "docs/cluster.md" in (ROOT / "README.md").read_text()
    for rel in (
        "cluster/raycluster.yaml",
        "cluster/rayjob-extract.yaml",
        "cluster/rayjob-train.yaml",
        "cluster/rayservice.yaml",
        "cluster/serve_config.yaml",
        "cluster/launcher-aws.yaml",
        "cluster/Dockerfile",
        "configs/extract/cluster.yaml",
        "configs/train/cluster.yaml",
        "tests/drill/test_cluster.py",
    ):
        assert rel in doc and (ROOT / rel).exists(), rel


def test_corpora_doc_names_every_corpus_and_the_label_map():
    from raymer.corpora.prepare import CORPORA

    doc = (ROOT / "docs" / "corpora.md").read_text()
    for name in CORPORA:
        assert f"`{name}`" in doc, name
    assert "configs/corpora/ravdess-4class.yaml" in doc
    assert (ROOT / "configs" / "corpora" / "ravdess-4class.yaml").exists()
    assert "docs/corpora.md" in (ROOT / "README.md").read_text()
