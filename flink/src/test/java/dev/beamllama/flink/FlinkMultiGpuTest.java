package dev.beamllama.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * One engine per GPU: {@code scripts/flink-cluster start --gpus=LIST} on the emulated CUDA device
 * with two devices ({@code CUDA_EMU_DEVICES=2}), each TaskManager given its own GPU through
 * {@code CUDA_VISIBLE_DEVICES}, and a {@code --engine=cuda} job submitted as a user would
 * ({@code scripts/flink-submit}): each TaskManager loads one engine, on its own GPU (its engine line
 * names that device's PCI bus id), and every record is written exactly once. Skipped, saying why,
 * where the emulator is not built, unless {@code BEAM_LLAMA_REQUIRE_CUDA=1} (CI) makes that a failure.
 */
class FlinkMultiGpuTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String ENGINE_LOADED_LINE = "engine loaded in this JVM";

  @TempDir static Path dir;
  static Path root;
  static Path runDir;
  static Map<String, String> env;

  @BeforeAll
  static void paths() {
    root = Path.of(System.getProperty("beamllama.root")).toAbsolutePath();
    runDir = dir.resolve("flink-cluster");
  }

  @AfterAll
  static void stopCluster() throws Exception {
    if (env != null) {
      exec(dir.resolve("cluster-stop.log"), Duration.ofMinutes(2), env, "scripts/flink-cluster", "stop");
    }
  }

  @Test
  void eachTaskManagerLoadsOneEngineOnItsOwnGpuAndEveryRecordIsWrittenOnce() throws Exception {
    Path emulator = emulatorDirectory();
    Path model = demoModel();
    env = new HashMap<>(Map.of(
        "FLINK_RUN_DIR", runDir.toString(),
        "FLINK_REST_PORT", Integer.toString(freePort()),
        "FLINK_RPC_PORT", Integer.toString(freePort()),
        "BEAM_LLAMA_JAR", System.getProperty("beamllama.jobJar"),
        "LD_LIBRARY_PATH", emulator.toString(),
        "CUDA_EMU_DEVICES", "2",
        // The emulator's device memory is host memory it fills at allocation, and the engine takes
        // most of what a device has: 1 GiB each keeps the three JVMs within a CI machine.
        "CUDA_EMU_TOTAL_MEM", "1g",
        "FLINK_TM_MEMORY", "2048m",
        "FLINK_TM_OFFHEAP", "256m"));
    // GPU 1 first: TaskManager 1 must get physical device 1, whose bus is 02, not the first device.
    String started = exec(dir.resolve("cluster-start.log"), Duration.ofMinutes(3), env, "scripts/flink-cluster", "start", "--gpus=1,0");
    assertTrue(started.contains("TaskManager 1 (pid ") && started.contains(") on GPU 1 registered"), started);
    assertTrue(started.contains("TaskManager 2 (pid ") && started.contains(") on GPU 0 registered"), started);
    assertTrue(started.contains("parallelism.default 4"), started);
    assertEquals("1", Files.readString(runDir.resolve("taskmanager-1.gpu")).trim());
    assertEquals("0", Files.readString(runDir.resolve("taskmanager-2.gpu")).trim());
    String status = exec(dir.resolve("cluster-status.log"), Duration.ofMinutes(1), env, "scripts/flink-cluster", "status");
    assertTrue(status.matches("(?s).*taskmanager-1: running \\(pid \\d+, GPU 1\\).*taskmanager-2: running \\(pid \\d+, GPU 0\\).*"), status);

    Path input = root.resolve("samples/chat.jsonl");
    String job = exec(dir.resolve("job.log"), Duration.ofMinutes(6), env, "scripts/flink-submit", "--input=" + input,
        "--output=" + dir.resolve("out/completions.jsonl"), "--model=" + model, "--engine=cuda", "--maxNewTokens=8");

    // The job ran on both TaskManagers' slots: flink-submit passed the cluster's parallelism on.
    assertTrue(job.contains("--parallelism=4, the cluster's parallelism.default"), job);
    assertTrue(job.contains("engine loaded 2 time(s)"), "the engine_loads metric, one load per TaskManager: " + job);
    String first = engineLine(runDir.resolve("log/taskmanager-1.log"));
    String second = engineLine(runDir.resolve("log/taskmanager-2.log"));
    assertTrue(first.contains("EMULATED") && first.contains(", PCI 0000:02:00.0, compute 9.0, "), "GPU 1 is the second device: " + first);
    assertTrue(second.contains("EMULATED") && second.contains(", PCI 0000:01:00.0, compute 9.0, "), "GPU 0 is the first device: " + second);

    Map<String, Integer> ids = new TreeMap<>();
    for (JsonNode c : records(dir.resolve("out"), "completions-0")) {
      ids.merge(c.get("id").asText(), 1, Integer::sum);
    }
    Map<String, Integer> expected = new TreeMap<>();
    for (String line : Files.readAllLines(input, StandardCharsets.UTF_8)) {
      if (!line.isBlank()) {
        expected.put(JSON.readTree(line).get("id").asText(), 1);
      }
    }
    assertEquals(30, expected.size());
    assertEquals(expected, ids, "every input id exactly once");
    assertEquals(0, records(dir.resolve("out"), "completions-errors-").size(), "no dead letters");
  }

  @Test
  void aBadGpuListIsRefusedBeforeAnythingStarts() throws Exception {
    Path tools = Files.createDirectories(dir.resolve("fake-nvidia-smi"));
    Map<String, String> bad = new HashMap<>(Map.of("FLINK_RUN_DIR", dir.resolve("never-started").toString()));
    assertRefused(bad, "--gpus=0,1,0", "--gpus=0,1,0: GPU 0 is listed twice");
    assertRefused(bad, "--gpus=01,1", "--gpus=01,1: GPU 1 is listed twice");
    assertRefused(bad, "--gpus=0,-1", "--gpus=0,-1: expected GPU indices as nvidia-smi numbers them");
    assertRefused(bad, "--gpus=0,,1", "--gpus=0,,1: expected GPU indices");
    assertRefused(bad, "--gpus=gpu0", "--gpus=gpu0: expected GPU indices");
    assertRefused(bad, "--gpus=", "--gpus=: expected GPU indices");
    // `all` reads nvidia-smi's list, which is checked as a given list is (a stand-in nvidia-smi here).
    bad.put("PATH", tools + ":" + System.getenv("PATH"));
    fakeNvidiaSmi(tools, "echo 0; echo 1; echo 1");
    assertRefused(bad, "--gpus=all", "--gpus=all: GPU 1 is listed twice");
    fakeNvidiaSmi(tools, "echo 'NVIDIA-SMI has failed' >&2; exit 9");
    assertRefused(bad, "--gpus=all", "--gpus=all: nvidia-smi --query-gpu=index failed");
    assertFalse(Files.exists(dir.resolve("never-started")), "nothing was started or written");
  }

  private static void assertRefused(Map<String, String> environment, String option, String message) throws Exception {
    Path log = dir.resolve("refused.log");
    Process p = start(log, environment, "scripts/flink-cluster", "start", option);
    assertTrue(p.waitFor(1, TimeUnit.MINUTES), "flink-cluster start " + option + " did not return");
    String output = Files.readString(log, StandardCharsets.UTF_8);
    assertEquals(1, p.exitValue(), output);
    assertTrue(output.contains("flink-cluster: " + message), output);
  }

  private static void fakeNvidiaSmi(Path tools, String body) throws IOException {
    Path script = tools.resolve("nvidia-smi");
    Files.writeString(script, "#!/bin/sh\n" + body + "\n");
    Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwxr-xr-x"));
  }

  /** The one engine line of a TaskManager's log. */
  private static String engineLine(Path log) throws IOException {
    List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8).stream().filter(l -> l.contains(ENGINE_LOADED_LINE)).toList();
    assertEquals(1, lines.size(), "one engine load in " + log + ": " + lines);
    return lines.get(0);
  }

  /**
   * The emulated device's build directory (the beamllama.cudaEmulator property), as the model
   * module's CudaTestDevice finds it: skipped where it was not built, unless required.
   */
  private static Path emulatorDirectory() {
    String emulator = System.getProperty("beamllama.cudaEmulator", "");
    if (emulator.isEmpty() || !Files.exists(Path.of(emulator, "libcuda.so.1"))) {
      String why = "the emulated CUDA device is not built (" + (emulator.isEmpty() ? "no beamllama.cudaEmulator" : emulator) + ")";
      if ("1".equals(System.getenv("BEAM_LLAMA_REQUIRE_CUDA"))) {
        fail(why + ": BEAM_LLAMA_REQUIRE_CUDA=1 requires it (scripts/build-cuda-emulator)");
      }
      assumeTrue(false, why);
    }
    return Path.of(emulator);
  }

  private static Path demoModel() throws Exception {
    String made = exec(dir.resolve("make-demo-model.log"), Duration.ofMinutes(3), Map.of(), "scripts/make-demo-model");
    return made.lines().map(String::trim).filter(l -> l.startsWith("/") && Files.isDirectory(Path.of(l))).reduce((a, b) -> b)
        .map(Path::of).orElseThrow(() -> new AssertionError("scripts/make-demo-model printed no directory: " + made));
  }

  private static List<JsonNode> records(Path outputDir, String prefix) throws IOException {
    List<JsonNode> records = new ArrayList<>();
    try (Stream<Path> files = Files.list(outputDir)) {
      for (Path f : files.filter(f -> f.getFileName().toString().startsWith(prefix) && f.toString().endsWith(".jsonl")).sorted().toList()) {
        for (String line : Files.readAllLines(f, StandardCharsets.UTF_8)) {
          if (!line.isBlank()) {
            records.add(JSON.readTree(line));
          }
        }
      }
    }
    return records;
  }

  private static Process start(Path log, Map<String, String> environment, String... command) throws IOException {
    List<String> cmd = new ArrayList<>(List.of(command));
    cmd.set(0, root.resolve(cmd.get(0)).toString());
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(root.toFile()).redirectErrorStream(true).redirectOutput(log.toFile());
    // The cluster's GPUs come from --gpus alone, whatever the machine running the test has set.
    pb.environment().remove("CUDA_VISIBLE_DEVICES");
    pb.environment().putAll(environment);
    return pb.start();
  }

  /** Runs a script to completion (status 0); its output (stdout and stderr) is returned and kept in {@code log}. */
  private static String exec(Path log, Duration timeout, Map<String, String> environment, String... command) throws Exception {
    Process p = start(log, environment, command);
    if (!p.waitFor(timeout.toSeconds(), TimeUnit.SECONDS)) {
      p.destroyForcibly();
      fail(String.join(" ", command) + " did not finish within " + timeout + ": " + read(log));
    }
    String output = read(log);
    assertEquals(0, p.exitValue(), String.join(" ", command) + " failed: " + output);
    return output;
  }

  private static String read(Path log) throws IOException {
    String text = Files.readString(log, StandardCharsets.UTF_8);
    return text.length() > 20_000 ? "..." + text.substring(text.length() - 20_000) : text;
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }
}
