package dev.beamllama.model.engine;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.beamllama.model.Engines;
import dev.beamllama.model.cuda.CudaModelRunner;
import org.junit.jupiter.api.BeforeEach;

/** The engine contract on the CUDA backend; skipped, with the reason, where no GPU is usable. */
class CudaEngineContractTest extends EngineContractTest {
  private static final String UNAVAILABLE = CudaModelRunner.unavailableReason();

  /** Per test, so that each is reported skipped with the reason. */
  @BeforeEach
  void requireGpu() {
    String reason = UNAVAILABLE;
    assumeTrue(reason == null, () -> "CUDA engine not tested here: " + reason);
  }

  @Override
  Engines.Kind kind() {
    return Engines.Kind.CUDA;
  }
}
