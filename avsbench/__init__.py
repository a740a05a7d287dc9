"""avsbench: rank, submit and score TRECVID Ad-hoc Video Search (AVS) runs."""

__version__ = "0.1.0"
