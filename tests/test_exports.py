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
