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
# pickle.Unpickler's hooks, which the unpickler calls (isearchd.models.torchzip's allow-list).
_.find_class
_.persistent_load

# A choice of `isearch model pull|import --exporter` (typer reads the enum's members).
_.builder

# Module __getattr__ (PEP 562): lazy imports of the package's public names.
__getattr__

# The original README's Client API, for its users.
_.add_images
_.get_db_info

# A --log-level choice (typer commands, registered by decorator, are left out by pyproject's
# ignore_decorators).
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

# Face models: each says at which descriptor distance it takes two faces for one person
# (benchmarks/bench_faces.py measures it; the [people] max_distance default is dlib's, checked by
# tests/unit/test_config.py). Stored faces: whether the user pinned one (the store's grouping
# reads the column in SQL), and the face a person's list entry shows (for the web page's crops).
_.match_distance
_.pinned
_.sample_face_id

# The face models run in the calling thread: the in-process daemon of tests/inprocess and the
# benchmarks use it; the daemon runs them in worker processes (FaceWorkers).
ModelsReader

# isearchd/files/video.py: PyAV reads these attributes (decoder threads; keyframes only after a
# seek); the decode counts are read by benchmarks/bench_video.py and the unit tests
_.thread_type
_.skip_frame
_.keyframes_decoded
_.frames_decoded
