package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code --runner=FlinkRunner} with the embedded MiniCluster gives the DirectRunner's records (the real cluster is tested in flink/). */
class EmbeddedFlinkTest {
  @TempDir Path dir;

  @Test
  void embeddedFlinkGivesTheSameRecordsAsTheDirectRunner() throws Exception {
    Path input = TestJob.root().resolve("samples/qa.jsonl");
    List<String> job = List.of("--input=" + input, "--task=qa", "--model=" + TestJob.demoModel(), "--maxNewTokens=6");

    TestJob.Run flink = TestJob.run(with(job, "--output=" + dir.resolve("flink/c.jsonl"), "--runner=FlinkRunner", "--flinkMaster=[local]"));
    TestJob.Run direct = TestJob.run(with(job, "--output=" + dir.resolve("direct/c.jsonl")));

    List<String> onFlink = TestJob.comparable(TestJob.shards(dir.resolve("flink/c").toString(), ".jsonl"));
    assertEquals(TestJob.comparable(TestJob.shards(dir.resolve("direct/c").toString(), ".jsonl")), onFlink);
    assertEquals(direct.summary().completionsWritten(), onFlink.size());
    assertEquals(flink.summary().recordsRead(), direct.summary().recordsRead());
    assertEquals(1, flink.summary().engineLoads());

    // The engine ran in Flink's task slots: the report is made from the files and says what it lacks.
    JsonNode report = TestJob.JSON.readTree(dir.resolve("flink/c-report/summary.json").toFile());
    assertEquals(onFlink.size(), report.get("completions_written").asLong());
    assertTrue(report.get("engine_timeline").get("unavailable").asText().contains("FlinkRunner's workers"), report.toString());
    assertTrue(flink.err().contains("each logs 'engine progress'"), flink.err());
  }

  private static String[] with(List<String> job, String... more) {
    return java.util.stream.Stream.concat(job.stream(), java.util.Arrays.stream(more)).toArray(String[]::new);
  }
}
