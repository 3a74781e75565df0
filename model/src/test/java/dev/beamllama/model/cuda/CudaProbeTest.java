package dev.beamllama.model.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the CUDA probe reports where a piece is missing, each in a JVM of its own whose loader path
 * holds only what the case gives it: no driver at all, a driver (the emulated device's) without
 * cuBLAS. {@code --engine=auto} takes the CPU engine for both (EnginesTest).
 */
class CudaProbeTest {
  @TempDir Path dir;

  /** Prints the probe in a child JVM: its reason, or "usable" and the device. */
  public static final class Child {
    public static void main(String[] args) {
      CudaModelRunner.Probe probe = CudaModelRunner.probe();
      System.out.println(probe.usable() ? "usable " + probe.device() + (probe.emulated() ? " (emulated)" : "") : "unavailable " + probe.unavailableReason());
    }
  }

  @Test
  void withoutADriverTheProbeSaysSo() throws Exception {
    assumeTrue(Stream.of("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/cuda/compat", "/usr/lib/wsl/lib")
        .noneMatch(d -> Files.exists(Path.of(d, "libcuda.so.1"))), "this machine has an NVIDIA driver installed");
    String probe = probeWith(dir);
    assertTrue(probe.startsWith("unavailable ") && probe.contains("libcuda.so.1 not found"), probe);
  }

  @Test
  void aDriverWithoutCublasLtIsNotUsable() throws Exception {
    Path emulator = CudaTestDevice.emulatorDirectory();
    assumeTrue(Stream.of("/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu")
        .noneMatch(d -> Files.exists(Path.of(d, "libcublasLt.so.13")) || Files.exists(Path.of(d, "libcublasLt.so.12"))),
        "this machine has cuBLASLt installed");
    Files.createSymbolicLink(dir.resolve("libcuda.so.1"), emulator.resolve("libcuda.so.1"));
    String probe = probeWith(dir);
    assertTrue(probe.startsWith("unavailable ") && probe.contains("cuBLASLt not found"), probe);
  }

  @Test
  void theEmulatedDeviceSaysItIsOne() throws Exception {
    Path emulator = CudaTestDevice.emulatorDirectory();
    String probe = probeWith(emulator);
    assertEquals("usable", probe.split(" ")[0], probe);
    assertTrue(probe.endsWith("(emulated)") && probe.contains("emulator"), probe);
  }

  /** The probe's answer in a JVM whose LD_LIBRARY_PATH is {@code libraries} only (and no CUDA_HOME). */
  private static String probeWith(Path libraries) throws IOException, InterruptedException {
    Path java = Path.of(System.getProperty("java.home"), "bin", "java");
    ProcessBuilder builder = new ProcessBuilder(List.of(java.toString(), "--enable-native-access=ALL-UNNAMED", "-cp",
        System.getProperty("java.class.path"), Child.class.getName()));
    builder.environment().put("LD_LIBRARY_PATH", libraries.toString());
    builder.environment().remove("CUDA_HOME");
    builder.redirectErrorStream(true);
    Process process = builder.start();
    String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(process.waitFor(60, TimeUnit.SECONDS), "the child JVM did not finish");
    assertEquals(0, process.exitValue(), out);
    return out.lines().filter(l -> l.startsWith("usable") || l.startsWith("unavailable")).findFirst().orElse(out);
  }
}
