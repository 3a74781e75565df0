package dev.beamllama.model.cuda;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The CUDA device tests run on: a GPU, or the emulated device of {@code scripts/build-cuda-emulator}
 * (the build puts it on the tests' {@code LD_LIBRARY_PATH}). Where neither is usable a test is
 * skipped with the reason, unless {@code BEAM_LLAMA_REQUIRE_CUDA=1} (CI) makes that a failure.
 */
public final class CudaTestDevice {
  private static final CudaModelRunner.Probe PROBE = CudaModelRunner.probe();

  private CudaTestDevice() {}

  /** Skips (or, where required, fails) the calling test when no CUDA device is usable. */
  public static CudaModelRunner.Probe require() {
    if (!PROBE.usable()) {
      String message = "no CUDA device for this test: " + PROBE.unavailableReason();
      if ("1".equals(System.getenv("BEAM_LLAMA_REQUIRE_CUDA"))) {
        fail(message + " (BEAM_LLAMA_REQUIRE_CUDA=1: build the emulator with scripts/build-cuda-emulator)");
      }
      assumeTrue(false, message);
    }
    return PROBE;
  }

  public static CudaModelRunner.Probe probe() {
    return PROBE;
  }

  /**
   * The emulated device's build directory (the {@code beamllama.cudaEmulator} property the build
   * sets); skips, or fails where required, when it was not built.
   */
  public static Path emulatorDirectory() {
    String dir = System.getProperty("beamllama.cudaEmulator", "");
    if (dir.isEmpty() || !Files.exists(Path.of(dir, "libcuda.so.1"))) {
      String message = "the emulated CUDA device is not built (" + (dir.isEmpty() ? "no beamllama.cudaEmulator" : dir) + ")";
      if ("1".equals(System.getenv("BEAM_LLAMA_REQUIRE_CUDA"))) {
        fail(message + ": BEAM_LLAMA_REQUIRE_CUDA=1 requires it (scripts/build-cuda-emulator)");
      }
      assumeTrue(false, message);
    }
    return Path.of(dir);
  }
}
