import labelwise


def test_exported_members():
    assert labelwise.__all__ == sorted(
        [
            "DataFormatError",
            "Dataset",
            "DatasetError",
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
            "write",
        ]
    )
    for name in labelwise.__all__:
        assert getattr(labelwise, name) is not None
