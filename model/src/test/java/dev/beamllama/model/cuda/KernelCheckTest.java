package dev.beamllama.model.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * gpu-check's kernel checks on the test device: every kernel agrees with its CPU reference in bf16
 * and f32, and attention gives a row the same bits whatever step it is in, at the tiny shape and at
 * the 8B's (128-dimension heads, 4 query heads per KV head: the bf16 attention's tiles of 4 positions).
 */
class KernelCheckTest {
  @Test
  void everyKernelAgreesWithItsCpuReference() {
    assertEveryCheckPasses(KernelCheck.TINY, true, 23);
  }

  @Test
  void everyKernelAgreesWithItsCpuReferenceAtTheEightBShape() {
    assertEveryCheckPasses(KernelCheck.LLAMA_3_8B, false, 2);
  }

  private static void assertEveryCheckPasses(KernelCheck.Shape shape, boolean alsoF32, long seed) {
    CudaTestDevice.require();
    try (KernelCheck check = new KernelCheck()) {
      List<KernelCheck.Result> results = check.kernels(shape, alsoF32, seed);
      assertEquals(List.of(), results.stream().filter(r -> !r.pass()).toList(), "kernel checks that failed");
    }
  }
}
