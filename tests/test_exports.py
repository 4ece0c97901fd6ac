import labelwise


def test_exported_members():
    assert labelwise.__all__ == sorted(
        [
            "DataFormatError",
            "Dataset",
            "DatasetError",
            "GroupIterativeStratifiedKFold",
            "IterativeStratifiedKFold",
            "LabelError",
            "LabelSpace",
            "LabelwiseError",
            "MissingDependencyError",
            "NotFittedError",
            "ResourceLimitError",
            "UnknownLabelError",
            "__version__",
            "detect_format",
            "read",
            "split_report",
            "train_test_split",
            "write",
        ]
    )
    for name in labelwise.__all__:
        assert getattr(labelwise, name) is not None
