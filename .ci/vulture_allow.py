"""Names vulture (the dead-code check in .ci/run) cannot see used, each with the reason it stays.

Everything else it reports in isearchd/ is dead and is removed, not added here.
"""

# ruff: noqa: B018, F821
# Called by libraries, not by our code: torch modules' forward, watchdog's event dispatch,
# uvicorn's exit flag, ONNX Runtime's session options, torch's MultiheadAttention signature.
_.forward
_.logit_scale
_.need_weights
_.dispatch
_.should_exit
_.intra_op_num_threads
_.inter_op_num_threads
_.graph_optimization_level
_.log_severity_level
_.dynamo  # torch.onnx.export(dynamo=...) through a TypedDict of keyword arguments

# Module __getattr__ (PEP 562): lazy imports of the package's public names.
__getattr__

# The original README's Client API, for its users.
_.add_images
_.get_db_info

# Typer commands registered by decorator on a sub-app; a --log-level choice.
show
model_list
model_pull
model_import
critical

# Wire fields of replies, read by clients of the JSON protocol and the --json schemas.
_.protocol
_.authenticated
_.disk_bytes
_.scan_seconds

# The analysis seam (isearchd.engine.analysis): what an analysis declares and how one that keeps
# its results in the analyses table records them; tests/unit/test_analysis.py uses both.
_.tables
_.record_analysis

# Synthetic vectors for benchmarks/ and the recall tests; face descriptors for the grouping ones.
clustered
synthetic_faces

# People in the embedded store (isearchd.store.people_db): read by the engine, protocol and CLI
# wiring of people, which comes next (remove these once it uses them); tests/unit/test_people_store.py
# uses them now.
_.unhide_person
_.pinned
_.descriptors
_.sample_face_id
_.sample_path
