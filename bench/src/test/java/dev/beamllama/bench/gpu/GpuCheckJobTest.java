package dev.beamllama.bench.gpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.cuda.CudaTestDevice;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code scripts/gpu-check --job --emulated}: the job a GPU machine's second call runs (the job's
 * classpath, its checkpoint and records, the rows of its table) runs on the emulated device, so that
 * the lent minutes are not spent finding a typo.
 */
class GpuCheckJobTest {
  @TempDir Path out;

  @Test
  void theJobRunsAndReportsItsTokensPerSecond() throws Exception {
    CudaTestDevice.require();
    Path root = Path.of("..").toAbsolutePath().normalize();
    Path log = out.resolve("gpu-check.out");
    ProcessBuilder builder = new ProcessBuilder(root.resolve("scripts/gpu-check").toString(), "--job", "--emulated")
        .directory(root.toFile()).redirectErrorStream(true).redirectOutput(log.toFile());
    builder.environment().put("OUT", out.toString());
    Process gpuCheck = builder.start();
    if (!gpuCheck.waitFor(15, TimeUnit.MINUTES)) {
      gpuCheck.destroyForcibly();
    }
    String output = Files.readString(log, StandardCharsets.UTF_8);
    assertEquals(0, gpuCheck.exitValue(), output);
    assertTrue(output.contains("| job records | 16 records read, 16 completions written, 0 dead letters |"), output);
    assertTrue(output.matches("(?s).*\\| job, 16 records \\| [0-9]+ prompt tokens, 64 generated tokens, [0-9.]+ generated tokens/s, .*"), output);
    assertTrue(output.contains("on cuda (EMULATED"), output);
  }
}
