package dev.beamllama.model.cuda;

/** Why the CUDA engine cannot run here: no driver, no GPU, no cuBLAS, or a build without kernels. */
public final class CudaUnavailableException extends RuntimeException {
  public CudaUnavailableException(String message) {
    super(message);
  }

  public CudaUnavailableException(String message, Throwable cause) {
    super(message, cause);
  }
}
