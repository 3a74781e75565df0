package dev.beamllama.model.engine;

import dev.beamllama.model.Engines;
import dev.beamllama.model.cuda.CudaTestDevice;
import org.junit.jupiter.api.BeforeEach;

/**
 * The engine contract on the CUDA backend, on a GPU or the emulated CUDA device (CI); skipped, with
 * the reason, where neither is usable.
 */
class CudaEngineContractTest extends EngineContractTest {
  /** Per test, so that each is reported skipped with the reason. */
  @BeforeEach
  void requireCuda() {
    CudaTestDevice.require();
  }

  @Override
  Engines.Kind kind() {
    return Engines.Kind.CUDA;
  }
}
