package dev.beamllama.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.cuda.CudaModelRunner.Probe;
import dev.beamllama.model.cuda.CudaUnavailableException;
import org.junit.jupiter.api.Test;

/** Which backend each --engine value takes, for what the CUDA probe found (CudaProbeTest: what it finds). */
class EnginesTest {
  private static final Probe GPU = new Probe(null, "NVIDIA H200", false);
  private static final Probe EMULATED = new Probe(null, "beam-llama CUDA emulator (sm_90 on the CPU)", true);
  private static final Probe NO_CUBLAS = new Probe("cuBLAS not found (tried ...)", null, false);

  @Test
  void autoTakesAGpuButNeverAnEmulatedDeviceNorOneWithoutCublas() {
    assertEquals(Engines.Kind.CUDA, Engines.choose(Engines.Kind.AUTO, GPU));
    assertEquals(Engines.Kind.CPU, Engines.choose(Engines.Kind.AUTO, EMULATED));
    assertEquals(Engines.Kind.CPU, Engines.choose(Engines.Kind.AUTO, NO_CUBLAS));
  }

  @Test
  void cudaTakesAnEmulatedDeviceWhenAskedAndSaysWhyItCannotRun() {
    assertEquals(Engines.Kind.CUDA, Engines.choose(Engines.Kind.CUDA, GPU));
    assertEquals(Engines.Kind.CUDA, Engines.choose(Engines.Kind.CUDA, EMULATED));
    CudaUnavailableException e = assertThrows(CudaUnavailableException.class, () -> Engines.choose(Engines.Kind.CUDA, NO_CUBLAS));
    assertTrue(e.getMessage().contains("cuBLAS not found"), e.getMessage());
    assertEquals(Engines.Kind.CPU, Engines.choose(Engines.Kind.CPU, null));
  }
}
