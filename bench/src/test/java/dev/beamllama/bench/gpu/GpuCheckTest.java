package dev.beamllama.bench.gpu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.beamllama.model.cuda.CudaTestDevice;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * gpu-check's diagnosis at the tiny shape, on the emulated CUDA device in CI (or a GPU): every
 * kernel, the GEMM wrapper, a two-layer model through both engines stage by stage, the sampler and
 * the event timings all run and agree with the CPU, so the one-shot GPU run is not the first run.
 */
class GpuCheckTest {
  @TempDir Path work;

  @Test
  void theDiagnosisPassesAtTheTinyShape() {
    CudaTestDevice.require();
    assertEquals(0, GpuCheck.run(new String[] {"diagnose", work.toString(), "tiny"}), "a check failed: see the table above");
  }

  @Test
  void aBadCommandLineIsStatusTwo() {
    assertEquals(2, GpuCheck.run(new String[] {"diagnose"}));
  }
}
