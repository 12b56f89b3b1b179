"""Score stage: code extraction, the sandbox, execution/CodeBLEU/classification scoring."""
