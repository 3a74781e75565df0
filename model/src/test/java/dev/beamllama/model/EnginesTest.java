package dev.beamllama.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.cuda.CudaModelRunner.Probe;
import dev.beamllama.model.cuda.CudaUnavailableException;
import dev.beamllama.model.engine.CacheSizing;
import dev.beamllama.model.engine.EngineContext;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.LlmEngine;
import org.junit.jupiter.api.Test;

/**
 * Which backend each --engine value takes, for what the CUDA probe found (CudaProbeTest: what it
 * finds), and the context a job plans with for each.
 */
class EnginesTest {
  private static final Probe GPU = new Probe(null, "NVIDIA H200", false);
  private static final Probe EMULATED = new Probe(null, "beam-llama CUDA emulator (sm_90 on the CPU)", true);
  private static final Probe NO_CUBLAS_LT = new Probe("cuBLASLt not found (tried ...)", null, false);

  @Test
  void autoTakesAGpuButNeverAnEmulatedDeviceNorOneWithoutCublasLt() {
    assertEquals(Engines.Kind.CUDA, Engines.choose(Engines.Kind.AUTO, GPU));
    assertEquals(Engines.Kind.CPU, Engines.choose(Engines.Kind.AUTO, EMULATED));
    assertEquals(Engines.Kind.CPU, Engines.choose(Engines.Kind.AUTO, NO_CUBLAS_LT));
  }

  @Test
  void cudaTakesAnEmulatedDeviceWhenAskedAndSaysWhyItCannotRun() {
    assertEquals(Engines.Kind.CUDA, Engines.choose(Engines.Kind.CUDA, GPU));
    assertEquals(Engines.Kind.CUDA, Engines.choose(Engines.Kind.CUDA, EMULATED));
    CudaUnavailableException e = assertThrows(CudaUnavailableException.class, () -> Engines.choose(Engines.Kind.CUDA, NO_CUBLAS_LT));
    assertTrue(e.getMessage().contains("cuBLASLt not found"), e.getMessage());
    assertEquals(Engines.Kind.CPU, Engines.choose(Engines.Kind.CPU, null));
  }

  @Test
  void aJobPlansWithTheKvCacheItsEngineWillHave() {
    ModelDirectory f32 = new ModelDirectory(Fixtures.goldenCheckpoint("tiny-llama3-f32"));
    ModelDirectory bf16 = new ModelDirectory(Fixtures.goldenCheckpoint("tiny-llama3-bf16"));
    long bytesFor128 = CacheSizing.bytesPerBlock(f32.config(), EngineOptions.DEFAULT_BLOCK_SIZE, false) * 128 / EngineOptions.DEFAULT_BLOCK_SIZE;
    EngineOptions small = EngineOptions.defaults().withKvCacheBytes(bytesFor128).withThreads(1);

    assertEquals(new EngineContext(128, 256, bytesFor128), Engines.context(f32, Engines.Kind.CPU, small));
    assertEquals(new EngineContext(256, 256, bytesFor128), Engines.context(bf16, Engines.Kind.CPU, small), "bf16 activations, bf16 cache");
    assertEquals(new EngineContext(128, 256, bytesFor128), Engines.context(bf16, Engines.Kind.CPU,
        small.withActivations(EngineOptions.Precision.F32)));
    assertEquals(new EngineContext(128, 256, bytesFor128), Engines.context(f32, Engines.Kind.CUDA, small), "--kvCacheBytes caps CUDA's too");
    assertEquals(new EngineContext(256, 256, EngineOptions.CPU_KV_CACHE_BYTES), Engines.context(f32, Engines.Kind.AUTO, EngineOptions.defaults()),
        "auto plans with the CPU engine's default");
    assertEquals(new EngineContext(256, 256, 0), Engines.context(f32, Engines.Kind.CUDA, EngineOptions.defaults()),
        "a CUDA engine sizing its cache from free memory must hold the positions");
    for (ModelDirectory model : new ModelDirectory[] {f32, bf16}) {
      try (LlmEngine engine = Engines.create(model, Engines.Kind.CPU, small)) {
        assertEquals(Engines.context(model, Engines.Kind.CPU, small).tokens(), engine.runner().maxSequenceLength(), model.name());
      }
    }
  }
}
