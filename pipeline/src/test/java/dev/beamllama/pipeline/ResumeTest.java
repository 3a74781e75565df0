package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * --resumeFrom: a job that died part way left some completions in Beam's temporary files (the last
 * one cut mid-line), beside another job's finished output (other sampling settings); the resumed run
 * generates only what is missing, and the two outputs together are exactly the full run's output.
 */
class ResumeTest {
  @TempDir Path dir;

  @Test
  void aResumedRunWritesOnlyWhatIsMissingAndTheUnionIsTheFullOutput() throws Exception {
    List<String> lines = new ArrayList<>();
    for (int i = 0; i < 12; i++) {
      ObjectNode r = TestJob.JSON.createObjectNode().put("id", String.format("r%02d", i)).put("user", "질문 " + i);
      if (i % 3 == 0) {
        r.put("n", 3);
      }
      lines.add(r.toString());
    }
    lines.add("{\"id\": broken");
    Path input = TestJob.writeJsonl(dir.resolve("in/prompts.jsonl"), lines);
    List<String> job = List.of("--input=" + input, "--model=" + TestJob.demoModel(), "--maxNewTokens=5");

    TestJob.run(with(job, "--output=" + dir.resolve("full/c.jsonl")));
    List<JsonNode> full = TestJob.shards(dir.resolve("full/c").toString(), ".jsonl");
    assertEquals(8 + 4 * 3, full.size());

    // The died run: a temporary shard holding the first half of the samples, then a line cut short.
    List<String> written = new ArrayList<>();
    StringBuilder shard = new StringBuilder();
    for (JsonNode c : full.subList(0, full.size() / 2)) {
      shard.append(c).append('\n');
      written.add(c.get("id").asText() + "#" + c.get("sample_index").asInt());
    }
    String cut = full.get(full.size() / 2).toString();
    shard.append(cut, 0, cut.length() / 2);
    Path temp = dir.resolve("died/.temp-beam-0f3a/2c6e9d1a");
    Files.createDirectories(temp.getParent());
    Files.writeString(temp, shard.toString(), StandardCharsets.UTF_8);
    // Another job's whole output in the same directory: the same ids at another temperature are not this job's samples.
    StringBuilder otherJob = new StringBuilder();
    for (JsonNode c : full) {
      otherJob.append(((ObjectNode) c.deepCopy()).put("temperature", 0.5)).append('\n');
    }
    Files.writeString(dir.resolve("died/t05-00000-of-00001.jsonl"), otherJob.toString(), StandardCharsets.UTF_8);

    TestJob.Run resumed = TestJob.run(with(job, "--output=" + dir.resolve("resumed/c.jsonl"), "--resumeFrom=" + dir.resolve("died")));
    List<JsonNode> rest = TestJob.shards(dir.resolve("resumed/c").toString(), ".jsonl");
    assertEquals(written.size(), resumed.summary().samplesResumed(), "every sample of the died run is taken as done");
    assertEquals(full.size(), resumed.summary().samplesOfOtherSettings(), "and none of the other job's");
    assertTrue(resumed.out().contains(full.size() + " completions under --resumeFrom were written with other settings"), resumed.out());
    for (JsonNode c : rest) {
      assertTrue(!written.contains(c.get("id").asText() + "#" + c.get("sample_index").asInt()), "generated again: " + c);
    }
    List<JsonNode> union = new ArrayList<>(full.subList(0, full.size() / 2));
    union.addAll(rest);
    assertEquals(TestJob.comparable(full), TestJob.comparable(union), "earlier + resumed = the full output, no sample twice");
    assertEquals(1, TestJob.shards(dir.resolve("resumed/c-errors").toString(), ".jsonl").size(), "the broken line is a dead letter again");
    assertEquals(13, resumed.summary().recordsRead());
    assertTrue(new TreeSet<>(written).size() == written.size());
  }

  @Test
  void resumingIntoTheSameOutputIsRefused() {
    Path out = dir.resolve("out/c.jsonl");
    Main.StartupError e = assertThrows(Main.StartupError.class, () -> TestJob.run("--input=" + TestJob.root().resolve("samples/chat.jsonl"),
        "--model=" + TestJob.demoModel(), "--output=" + out, "--resumeFrom=" + dir.resolve("out/c-00000-of-00001.jsonl")));
    assertTrue(e.getMessage().contains("--resumeFrom"), e.getMessage());
  }

  private static String[] with(List<String> job, String... more) {
    List<String> args = new ArrayList<>(job);
    args.addAll(List.of(more));
    return args.toArray(String[]::new);
  }
}
