"""Orchestration: where every output lives (:mod:`.layout`) and which library code each stage runs
(:mod:`.code_deps`). The Snakefile rules and the DVC stage generator import these; the science
modules never do."""
