package dev.beamllama.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * The job on a real Flink 1.19 standalone cluster (scripts/flink-cluster: a JobManager and a
 * TaskManager as separate JVMs), submitted as a user would (scripts/flink-submit): the same
 * records as the DirectRunner, one engine per TaskManager, and no record lost or doubled when the
 * TaskManager dies in the middle of the job.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class FlinkClusterTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Pattern ENGINE_LOADS = Pattern.compile("engine loaded (\\d+) time\\(s\\)");
  private static final Pattern PROMPT_COMPUTED = Pattern.compile("(\\d+) of the (\\d+) prompt tokens computed");
  private static final String ENGINE_LOADED_LINE = "engine loaded in this JVM";

  @TempDir static Path dir;
  static Path root;
  static Path runDir;
  static Path model;
  static Map<String, String> clusterEnv;

  @BeforeAll
  static void startCluster() throws Exception {
    root = Path.of(System.getProperty("beamllama.root")).toAbsolutePath();
    runDir = dir.resolve("flink-cluster");
    clusterEnv = Map.of(
        "FLINK_RUN_DIR", runDir.toString(),
        "FLINK_REST_PORT", Integer.toString(freePort()),
        "FLINK_RPC_PORT", Integer.toString(freePort()),
        "BEAM_LLAMA_JAR", System.getProperty("beamllama.jobJar"));
    String made = exec(dir.resolve("make-demo-model.log"), Duration.ofMinutes(3), "scripts/make-demo-model");
    model = made.lines().map(String::trim).filter(l -> l.startsWith("/") && Files.isDirectory(Path.of(l))).reduce((a, b) -> b)
        .map(Path::of).orElseThrow(() -> new AssertionError("scripts/make-demo-model printed no directory: " + made));
    exec(dir.resolve("cluster-start.log"), Duration.ofMinutes(3), "scripts/flink-cluster", "start");
  }

  @AfterAll
  static void stopCluster() throws Exception {
    if (runDir != null) {
      exec(dir.resolve("cluster-stop.log"), Duration.ofMinutes(2), "scripts/flink-cluster", "stop");
    }
  }

  @Test
  @Order(1)
  void samplesJobOnTheClusterGivesTheDirectRunnersRecordsWithOneEnginePerTaskManager() throws Exception {
    List<String> job = List.of("--input=" + root.resolve("samples/chat.jsonl"), "--model=" + model, "--maxNewTokens=24");
    int loadsBefore = count(taskManagerLogs(), ENGINE_LOADED_LINE);

    String flink = exec(dir.resolve("flink-job.log"), Duration.ofMinutes(6), with(job, "scripts/flink-submit",
        "--output=" + dir.resolve("flink/completions.jsonl")));
    String direct = exec(dir.resolve("direct-job.log"), Duration.ofMinutes(6), with(job, "scripts/beam-llama",
        "--output=" + dir.resolve("direct/completions.jsonl")));

    List<String> onFlink = comparable(records(dir.resolve("flink"), "completions-"));
    List<String> onDirect = comparable(records(dir.resolve("direct"), "completions-"));
    assertEquals(30, onFlink.size(), "one completion per sample record");
    assertEquals(onDirect, onFlink, "the cluster and the DirectRunner give identical records for the same seeds");
    assertEquals(0, records(dir.resolve("flink"), "completions-errors-").size());

    // Two slots ran the generate step (parallelism 2) and shared one engine.
    assertEquals(1, engineLoads(flink), "the engine_loads metric: one load for the one TaskManager");
    assertEquals(1, count(taskManagerLogs(), ENGINE_LOADED_LINE) - loadsBefore, "one load logged by the TaskManager");
    assertTrue(direct.contains("engine loaded 1 time(s)"), direct);

    // The engine ran in the TaskManager, yet the launcher's summary tells the prefix cache's effect
    // (the records share the chat template's system prompt), from the job's metrics.
    Matcher computed = PROMPT_COMPUTED.matcher(flink);
    assertTrue(computed.find(), "the summary counts prompt tokens computed: " + flink);
    assertTrue(Long.parseLong(computed.group(1)) < Long.parseLong(computed.group(2)), computed.group());
  }

  @Test
  @Order(2)
  void jobSurvivesLosingItsTaskManagerWithEveryIdExactlyOnce() throws Exception {
    Path input = root.resolve("samples/summarize.jsonl");
    Path log = dir.resolve("flink-failover-job.log");
    int loadsBefore = count(taskManagerLogs(), ENGINE_LOADED_LINE);
    Process job = start(log, "scripts/flink-submit", "--input=" + input, "--task=summarize", "--model=" + model,
        "--maxNewTokens=256", "--output=" + dir.resolve("failover/completions.jsonl"), "--journalSyncSamples=1");

    // Kill the TaskManager once it has journaled a few samples, then give the cluster a new one.
    Path journal = dir.resolve("failover/completions-journal");
    awaitLog(() -> journaledSamples(journal) >= 3, job, log, Duration.ofMinutes(4));
    assertTrue(job.isAlive(), "the job must still be running when its TaskManager is killed: " + read(log));
    long taskManager = Long.parseLong(Files.readString(runDir.resolve("taskmanager-1.pid")).trim());
    ProcessHandle.of(taskManager).orElseThrow().destroyForcibly();
    exec(dir.resolve("add-taskmanager.log"), Duration.ofMinutes(2), "scripts/flink-cluster", "add-taskmanager");

    if (!job.waitFor(8, TimeUnit.MINUTES)) {
      job.destroyForcibly();
      fail("the job did not finish after the TaskManager was replaced: " + read(log));
    }
    assertEquals(0, job.exitValue(), read(log));
    assertTrue(count(List.of(runDir.resolve("log/jobmanager.log")), "to RESTARTING") > 0, "the JobManager restarted the job");

    Map<String, Integer> ids = new TreeMap<>();
    for (JsonNode c : records(dir.resolve("failover"), "completions-0")) {
      ids.merge(c.get("id").asText(), 1, Integer::sum);
    }
    Map<String, Integer> expected = new TreeMap<>();
    for (String line : Files.readAllLines(input, StandardCharsets.UTF_8)) {
      if (!line.isBlank()) {
        expected.put(JSON.readTree(line).get("id").asText(), 1);
      }
    }
    assertEquals(expected, ids, "every input id exactly once");
    assertEquals(0, records(dir.resolve("failover"), "completions-errors-").size());
    assertTrue(engineLoads(read(log)) >= 1, read(log));
    Matcher fromJournal = Pattern.compile("(\\d+) samples were taken from the journal").matcher(read(log));
    assertTrue(fromJournal.find() && Long.parseLong(fromJournal.group(1)) >= 3,
        "the retried task takes what the lost TaskManager journaled instead of generating it again: " + read(log));
  }

  /** Completion lines the job's workers have journaled (each file's header line aside). */
  private static long journaledSamples(Path journal) throws IOException {
    if (!Files.isDirectory(journal)) {
      return 0;
    }
    long lines = 0;
    try (Stream<Path> files = Files.list(journal)) {
      for (Path file : files.toList()) {
        lines += Math.max(0, Files.readString(file, StandardCharsets.UTF_8).chars().filter(c -> c == '\n').count() - 1);
      }
    }
    return lines;
  }

  private static long engineLoads(String jobOutput) {
    Matcher m = ENGINE_LOADS.matcher(jobOutput);
    assertTrue(m.find(), "the job summary reports engine loads: " + jobOutput);
    return Long.parseLong(m.group(1));
  }

  /** Sorted records with the run-dependent latency removed. */
  private static List<String> comparable(List<JsonNode> records) {
    return records.stream()
        .map(r -> {
          ObjectNode copy = ((ObjectNode) r).deepCopy();
          copy.remove("latency_ms");
          return copy;
        })
        .sorted(Comparator.comparing((ObjectNode c) -> c.get("id").asText()).thenComparingInt(c -> c.get("sample_index").asInt()))
        .map(JsonNode::toString)
        .toList();
  }

  private static List<JsonNode> records(Path outputDir, String prefix) throws IOException {
    List<JsonNode> records = new ArrayList<>();
    if (!Files.isDirectory(outputDir)) {
      return records;
    }
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

  private static List<Path> taskManagerLogs() throws IOException {
    try (Stream<Path> files = Files.list(runDir.resolve("log"))) {
      return files.filter(f -> f.getFileName().toString().matches("taskmanager-\\d+\\.log")).toList();
    }
  }

  private static int count(List<Path> logs, String text) throws IOException {
    int n = 0;
    for (Path log : logs) {
      for (String line : Files.readAllLines(log, StandardCharsets.UTF_8)) {
        if (line.contains(text)) {
          n++;
        }
      }
    }
    return n;
  }

  private interface Condition {
    boolean holds() throws IOException;
  }

  private static void awaitLog(Condition condition, Process job, Path log, Duration timeout) throws Exception {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.holds()) {
      if (!job.isAlive() || System.nanoTime() > deadline) {
        String state = job.isAlive() ? "still running after " + timeout : "exited with status " + job.exitValue();
        job.destroyForcibly();
        fail("the job never started generating (" + state + "): " + read(log));
      }
      Thread.sleep(200);
    }
  }

  private static String[] with(List<String> job, String script, String... more) {
    List<String> command = new ArrayList<>(List.of(script));
    command.addAll(job);
    command.addAll(List.of(more));
    return command.toArray(String[]::new);
  }

  private static Process start(Path log, String... command) throws IOException {
    List<String> cmd = new ArrayList<>(List.of(command));
    cmd.set(0, root.resolve(cmd.get(0)).toString());
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(root.toFile()).redirectErrorStream(true).redirectOutput(log.toFile());
    pb.environment().putAll(clusterEnv);
    return pb.start();
  }

  /** Runs a script to completion; its output (stdout and stderr) is returned and kept in {@code log}. */
  private static String exec(Path log, Duration timeout, String... command) throws Exception {
    Process p = start(log, command);
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
