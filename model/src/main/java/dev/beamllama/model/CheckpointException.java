package dev.beamllama.model;

/**
 * A checkpoint directory that cannot be used: a missing or malformed file, a missing tensor, a wrong
 * shape, an unsupported setting. The message always names the file and, where there is one, the tensor.
 */
public class CheckpointException extends RuntimeException {
  public CheckpointException(String message) {
    super(message);
  }

  public CheckpointException(String message, Throwable cause) {
    super(message, cause);
  }
}
