package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.beamllama.io.CompletionJournal;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The completion journal: a job's JVM killed with SIGKILL past half of its records keeps every
 * sample it journaled; resuming generates only the rest, and the journal plus the resumed output
 * are exactly a clean run's output. Rerunning the same job into the same output takes the journaled
 * samples instead of generating them (what a retried task does), and a journal of another job is
 * refused rather than mixed in.
 */
class JournalTest {
  private static final int RECORDS = 80;

  @TempDir Path dir;

  private List<String> job(int records) throws IOException {
    List<JsonNode> samples = new ArrayList<>();
    for (String line : Files.readAllLines(TestJob.root().resolve("samples/chat.jsonl"), StandardCharsets.UTF_8)) {
      samples.add(TestJob.JSON.readTree(line));
    }
    List<String> lines = new ArrayList<>();
    for (int i = 0; i < records; i++) {
      lines.add(((ObjectNode) samples.get(i % samples.size()).deepCopy()).put("id", String.format("c%04d", i)).toString());
    }
    Path input = TestJob.writeJsonl(dir.resolve("in/chat.jsonl"), lines);
    return List.of("--input=" + input, "--model=" + TestJob.demoModel(), "--task=chat", "--maxNewTokens=24");
  }

  @Test
  void aKilledJobLosesOnlyTheSamplesInFlight() throws Exception {
    List<String> job = job(RECORDS);
    Path killedOut = dir.resolve("killed/c.jsonl");
    Path journal = dir.resolve("killed/c-journal");
    // Synced at every sample, so that the lines on disk say how far the job got.
    Process process = startJob(with(job, "--output=" + killedOut, "--journalSyncSamples=1"));
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(3);
    while (journaled(journal).size() < RECORDS / 2 && process.isAlive() && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
    assertTrue(process.isAlive(), "the job must still be generating when it is killed (journaled " + journaled(journal).size() + ")");
    process.destroyForcibly(); // SIGKILL: no shutdown hook, no flush
    assertTrue(process.waitFor(30, TimeUnit.SECONDS));
    List<JsonNode> survived = journaled(journal);
    assertTrue(survived.size() >= RECORDS / 2 && survived.size() < RECORDS, "journaled " + survived.size());
    assertFalse(Files.list(killedOut.getParent()).anyMatch(f -> f.getFileName().toString().matches("c-\\d{5}-of-\\d{5}\\.jsonl")),
        "a killed DirectRunner job writes no final shard: without the journal everything would be lost");
    // A crash can cut the last line: it is read up to there.
    try (var files = Files.list(journal)) {
      Files.writeString(files.findFirst().orElseThrow(), "{\"id\": \"c00", StandardCharsets.UTF_8, StandardOpenOption.APPEND);
    }

    TestJob.Run clean = TestJob.run(with(job, "--output=" + dir.resolve("clean/c.jsonl")));
    List<JsonNode> full = TestJob.shards(dir.resolve("clean/c").toString(), ".jsonl");
    assertEquals(RECORDS, full.size());
    assertFalse(Files.exists(dir.resolve("clean/c-journal")), "a job that succeeded removes its journal");
    assertEquals(0, clean.summary().samplesFromJournal());

    TestJob.Run resumed = TestJob.run(with(job, "--output=" + dir.resolve("resumed/c.jsonl"), "--resumeFrom=" + killedOut.getParent()));
    List<JsonNode> rest = TestJob.shards(dir.resolve("resumed/c").toString(), ".jsonl");
    assertEquals(survived.size(), resumed.summary().samplesResumed(), "every journaled sample is taken as done");
    Set<String> journaledKeys = new HashSet<>();
    survived.forEach(c -> journaledKeys.add(key(c)));
    for (JsonNode c : rest) {
      assertFalse(journaledKeys.contains(key(c)), "generated again: " + key(c));
    }
    List<JsonNode> union = new ArrayList<>(survived);
    union.addAll(rest);
    assertEquals(TestJob.comparable(full), TestJob.comparable(union), "journal + resumed output = the clean run's output");

    // The same job again into the killed run's output (a retried task): journaled samples are taken, not generated.
    TestJob.Run again = TestJob.run(with(job, "--output=" + killedOut));
    assertEquals(survived.size(), again.summary().samplesFromJournal());
    assertEquals(RECORDS - survived.size(), again.summary().completionsWritten() - again.summary().samplesFromJournal());
    assertEquals(TestJob.comparable(full), TestJob.comparable(TestJob.shards(dir.resolve("killed/c").toString(), ".jsonl")));
    assertTrue(again.out().contains(survived.size() + " samples were taken from the journal"), again.out());
    assertFalse(Files.exists(journal), "removed once the output holds every sample");
  }

  @Test
  void aJournalOfAnotherJobIsRefused() throws Exception {
    List<String> job = job(4);
    Path journal = Files.createDirectories(dir.resolve("other/c-journal"));
    TestJob.run(with(job, "--output=" + dir.resolve("first/c.jsonl"), "--keepJournal=true", "--seed=7"));
    try (var files = Files.list(dir.resolve("first/c-journal"))) {
      Path kept = files.findFirst().orElseThrow();
      Files.copy(kept, journal.resolve(kept.getFileName()));
    }
    Main.StartupError sameOutput = assertThrows(Main.StartupError.class, () -> TestJob.run(with(job, "--output=" + dir.resolve("other/c.jsonl"))));
    assertTrue(sameOutput.getMessage().contains("seed 0 here, 7 there"), sameOutput.getMessage());
    Main.StartupError resumed = assertThrows(Main.StartupError.class,
        () -> TestJob.run(with(job, "--output=" + dir.resolve("new/c.jsonl"), "--resumeFrom=" + dir.resolve("first"))));
    assertTrue(resumed.getMessage().contains("other settings") && resumed.getMessage().contains(CompletionJournal.directoryOf("c")),
        resumed.getMessage());
  }

  /** The job in a JVM of its own, as scripts/beam-llama starts it. */
  private Process startJob(String[] args) throws IOException {
    List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
        Main.class.getName()));
    command.addAll(List.of(args));
    return new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(dir.resolve("killed-job.log").toFile()).start();
  }

  /** The completions in a journal's files, up to each file's last whole line. */
  private static List<JsonNode> journaled(Path journal) throws IOException {
    List<JsonNode> records = new ArrayList<>();
    for (Path file : CompletionJournal.files(journal)) {
      String text = Files.readString(file, StandardCharsets.UTF_8);
      for (String line : text.substring(0, text.lastIndexOf('\n') + 1).split("\n")) {
        JsonNode row = line.isBlank() ? null : TestJob.JSON.readTree(line);
        if (row != null && !CompletionJournal.isHeader(row)) {
          records.add(row);
        }
      }
    }
    return records;
  }

  private static String key(JsonNode c) {
    return c.get("id").asText() + "#" + c.get("sample_index").asInt();
  }

  private static String[] with(List<String> job, String... more) {
    List<String> args = new ArrayList<>(job);
    args.addAll(List.of(more));
    return args.toArray(String[]::new);
  }
}
