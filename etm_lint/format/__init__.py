"""The .etm bundle format and the ExecuTorch files inside it."""
