import labelwise


def test_exported_members():
    assert labelwise.__all__ == sorted(
        [
            "AutoModel",
            "DataFormatError",
            "Dataset",
            "DatasetError",
            "GroupIterativeStratifiedKFold",
            "IterativeStratifiedKFold",
            "LabelSets",
            "LabelTree",
            "LabelError",
            "LabelSpace",
            "LabelwiseError",
            "MissingDependencyError",
            "OneVsRest",
            "Pipeline",
            "NotFittedError",
            "ResourceLimitError",
            "UnknownLabelError",
            "__version__",
            "cross_fit_scores",
            "detect_format",
            "evaluate",
            "load_any",
            "load_model",
            "propensities",
            "read",
            "split_report",
            "train_test_split",
            "write",
        ]
    )
    for name in labelwise.__all__:
        assert getattr(labelwise, name) is not None


def test_every_error_class_lives_in_errors_py():
    # one module holds the tree (its docstring draws it); ClusterError was defined in
    # labelwise.distributed and stays importable from there
    import labelwise.distributed
    import labelwise.errors as errors

    assert "ClusterError" in errors.__all__ and "ClusterError" in errors.__doc__
    assert issubclass(errors.ClusterError, errors.LabelwiseError)
    assert labelwise.distributed.ClusterError is errors.ClusterError
    for name in errors.__all__:
        assert getattr(errors, name).__module__ == "labelwise.errors"
