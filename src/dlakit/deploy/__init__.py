"""From analysis to the board: trtexec command lines for a target, and TensorRT's logs and profiles read back."""
