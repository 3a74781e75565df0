package dev.beamllama.model.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Where nvcc is installed (as on CI), the build compiled the kernels into the fatbin resource and
 * every kernel the Java side launches is in it by name: a renamed or missing kernel fails here,
 * not on the first GPU.
 */
class CudaKernelsBuildTest {
  private static final List<String> TYPED = List.of("embedding", "rmsnorm", "gather_rows", "rope_write_kv", "attention_scores",
      "attention_values", "attention_combine", "silu_multiply", "to_f32");
  private static final List<String> UNTYPED = List.of("repetition_penalty", "sample");

  private static boolean nvccInstalled() {
    String path = System.getenv().getOrDefault("PATH", "");
    return Stream.concat(Stream.of(path.split(":")).map(d -> Path.of(d, "nvcc")),
        Stream.of(Path.of("/usr/local/cuda/bin/nvcc"), Path.of(System.getenv().getOrDefault("CUDA_HOME", "/nonexistent"), "bin/nvcc")))
        .anyMatch(Files::isExecutable);
  }

  @Test
  void theBuildCarriesEveryKernel() {
    assumeTrue(nvccInstalled(), "nvcc is not installed here: the build carries no kernels, --engine=cuda says so");
    assertTrue(CudaKernels.bundled(), "nvcc is installed but the build has no " + CudaKernels.FATBIN);
    String image = new String(CudaKernels.fatbin(), StandardCharsets.ISO_8859_1);
    for (String name : TYPED) {
      for (String suffix : List.of("_bf16", "_f32")) {
        assertTrue(image.contains(name + suffix), "the fatbin has no kernel " + name + suffix);
      }
    }
    for (String name : UNTYPED) {
      assertTrue(image.contains(name), "the fatbin has no kernel " + name);
    }
  }
}
