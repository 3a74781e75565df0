package dev.beamllama.model.engine;

/** A request the engine cannot run: empty prompt, unknown token ids, or a prompt longer than the context. */
public class InvalidRequestException extends RuntimeException {
  public InvalidRequestException(String message) {
    super(message);
  }
}
