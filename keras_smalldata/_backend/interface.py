"""The functions every backend module of `keras_smalldata._backend` defines."""

FUNCTIONS = (
    "accelerator_available",
    "compile_function",
    "fused_batch_normalization",
    "gradient_function",
    "in_model_scope",
    "in_tf_data_graph",
    "model_scope",
    "replica_count",
    "shard_batch",
    "xla_function",
)
