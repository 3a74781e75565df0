package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.beamllama.io.PromptParquet;
import dev.beamllama.transforms.EngineRegistry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The job end to end on the DirectRunner with the demo checkpoint: formats, accounting of every
 * record, determinism across runs and parallelism, and one engine per JVM shared by all bundles.
 */
class PipelineEndToEndTest {
  @TempDir static Path dir;
  static Path model;
  static Path jsonl;
  static Path parquet;
  /** id to number of samples it asks for. */
  static final Map<String, Integer> EXPECTED = new TreeMap<>();

  @BeforeAll
  static void inputs() throws Exception {
    model = TestJob.demoModel();
    List<String> lines = new ArrayList<>();
    for (int i = 0; i < 24; i++) {
      ObjectNode r = TestJob.JSON.createObjectNode().put("id", String.format("rec-%03d", i));
      switch (i % 4) {
        case 0 -> r.put("user", "서울의 인구는 얼마나 되나요? (" + i + ")");
        case 1 -> r.put("system", "당신은 친절한 요리 전문가입니다.").put("user", "된장찌개 끓이는 법을 알려 주세요 " + i);
        case 2 -> r.putArray("messages")
            .add(TestJob.JSON.createObjectNode().put("role", "user").put("content", "안녕하세요"))
            .add(TestJob.JSON.createObjectNode().put("role", "assistant").put("content", "안녕하세요! 무엇을 도와드릴까요?"))
            .add(TestJob.JSON.createObjectNode().put("role", "user").put("content", "복리를 설명해 주세요 " + i));
        default -> r.put("user", "짧은 시를 써 주세요 " + i).put("n", 2).put("max_new_tokens", 4).put("temperature", 0.7);
      }
      lines.add(r.toString());
      EXPECTED.put(r.get("id").asText(), r.has("n") ? r.get("n").asInt() : 1);
    }
    jsonl = TestJob.writeJsonl(dir.resolve("in/prompts.jsonl"), lines);
    List<JsonNode> records = new ArrayList<>();
    for (String line : lines) {
      records.add(TestJob.JSON.readTree(line));
    }
    parquet = dir.resolve("in-parquet/prompts.parquet");
    java.nio.file.Files.createDirectories(parquet.getParent());
    PromptParquet.write(records, parquet);
  }

  private static TestJob.Run job(Path input, String output, String... extra) throws Exception {
    List<String> args = new ArrayList<>(List.of("--input=" + input, "--output=" + output, "--model=" + model, "--maxNewTokens=8"));
    args.addAll(List.of(extra));
    return TestJob.run(args.toArray(String[]::new));
  }

  private static void assertEveryIdAccountedFor(List<JsonNode> completions) {
    Map<String, Integer> samples = new HashMap<>();
    for (JsonNode c : completions) {
      samples.merge(c.get("id").asText(), 1, Integer::sum);
      assertTrue(c.get("sample_index").asInt() < EXPECTED.get(c.get("id").asText()));
    }
    assertEquals(EXPECTED, new TreeMap<>(samples), "every record, with every sample it asked for, exactly once");
  }

  @Test
  void jsonlInJsonlOutParquetInParquetOutAndMixedGiveTheSameRecords() throws Exception {
    String jsonOut = dir.resolve("out-jj/completions.jsonl").toString();
    TestJob.Run jj = job(jsonl, jsonOut);
    List<JsonNode> fromJsonl = TestJob.shards(dir.resolve("out-jj/completions").toString(), ".jsonl");
    assertEveryIdAccountedFor(fromJsonl);
    assertEquals(24, jj.summary().recordsRead());
    assertEquals(fromJsonl.size(), jj.summary().completionsWritten());
    assertEquals(0, jj.summary().deadLetters());
    assertTrue(TestJob.shards(dir.resolve("out-jj/completions-errors").toString(), ".jsonl").isEmpty());
    for (JsonNode c : fromJsonl) {
      assertEquals("demo-model", c.get("model").asText());
      assertEquals("chat", c.get("task").asText());
      assertTrue(c.get("completion_tokens").asInt() <= c.get("max_new_tokens").asInt());
      assertTrue(c.get("prompt_tokens").asInt() > 5);
    }

    job(parquet, dir.resolve("out-pp/completions.parquet").toString());
    List<JsonNode> fromParquet = TestJob.shards(dir.resolve("out-pp/completions").toString(), ".parquet");
    assertEquals(TestJob.comparable(fromJsonl), TestJob.comparable(fromParquet), "Parquet in and out, same records");

    job(jsonl, dir.resolve("out-jp/completions").toString(), "--outputFormat=parquet");
    List<JsonNode> mixed = TestJob.shards(dir.resolve("out-jp/completions").toString(), ".parquet");
    assertEquals(TestJob.comparable(fromJsonl), TestJob.comparable(mixed), "JSONL in, Parquet out, same records");
    for (String out : List.of("out-jj", "out-pp")) {
      try (Stream<Path> files = Files.list(dir.resolve(out))) {
        List<String> names = files.map(f -> f.getFileName().toString()).sorted().toList();
        assertTrue(names.stream().allMatch(n -> n.matches("completions(-errors)?-\\d{5}-of-\\d{5}\\.(jsonl|parquet)|completions-report")),
            "after a job succeeds its output directory holds its output only (no sink temp or journal directory): " + names);
      }
    }
  }

  @Test
  void theSameJobTwiceAndAtParallelismOneAndFourGivesIdenticalOutputs() throws Exception {
    job(jsonl, dir.resolve("det-a/c.jsonl").toString());
    job(jsonl, dir.resolve("det-b/c.jsonl").toString());
    job(jsonl, dir.resolve("det-1/c.jsonl").toString(), "--targetParallelism=1");
    job(jsonl, dir.resolve("det-4/c.jsonl").toString(), "--targetParallelism=4");
    List<String> reference = TestJob.comparable(TestJob.shards(dir.resolve("det-a/c").toString(), ".jsonl"));
    assertEquals(30, reference.size());
    for (String run : new String[] {"det-b", "det-1", "det-4"}) {
      assertEquals(reference, TestJob.comparable(TestJob.shards(dir.resolve(run + "/c").toString(), ".jsonl")), run);
    }
    job(jsonl, dir.resolve("det-seed/c.jsonl").toString(), "--seed=7");
    List<String> otherSeed = TestJob.comparable(TestJob.shards(dir.resolve("det-seed/c").toString(), ".jsonl"));
    assertTrue(!reference.equals(otherSeed), "another job seed gives other samples");
  }

  @Test
  void aHuggingFaceIdRunsFromTheCacheAndNamesTheRecords() throws Exception {
    String id = "beam-llama/demo-model";
    var cache = TestJob.demoModelInCache(dir.resolve("hf"), id);
    Path input = TestJob.writeJsonl(dir.resolve("hf-in/p.jsonl"), List.of("{\"id\": \"a\", \"user\": \"안녕하세요\"}"));
    TestJob.Run run = TestJob.run(cache, "--input=" + input, "--output=" + dir.resolve("hf-out/c.jsonl"), "--model=" + id,
        "--maxNewTokens=4", "--temperature=0.7");
    List<JsonNode> completions = TestJob.shards(dir.resolve("hf-out/c").toString(), ".jsonl");
    assertEquals(1, completions.size());
    assertEquals(id, completions.get(0).get("model").asText(), "the id, not the snapshot's commit hash");
    String startup = run.out().lines().filter(l -> l.startsWith("beam-llama: model")).findFirst().orElseThrow();
    assertTrue(startup.contains("model " + id + " (Hugging Face cache snapshot " + dir.resolve("hf/hub/models--beam-llama--demo-model")),
        startup);
    assertTrue(startup.contains("temperature 0.7, top_k 40, top_p 0.9, repetition_penalty 1.1, max_new_tokens 4 "
        + "(temperature, max_new_tokens from flags, the rest model card defaults)"), startup);
    assertTrue(startup.contains("stop at <|end_of_text|> or <|eot_id|> (generation_config.json)"), startup);
  }

  @Test
  void oneEngineLoadPerJvmSharedByBundlesFromSeveralThreads() throws Exception {
    int loadsBefore = EngineRegistry.loads();
    TestJob.Run run = job(jsonl, dir.resolve("once/c.jsonl").toString(), "--targetParallelism=4");
    assertEquals(1, run.summary().engineLoads(), "the engine_loads metric: one load for four DoFn threads");
    assertEquals(loadsBefore + 1, EngineRegistry.loads(), "loads in this JVM");
    assertTrue(run.summary().maxBundlesPerEngineStep() > 1,
        "engine steps must mix sequences of different bundles, saw at most " + run.summary().maxBundlesPerEngineStep());
  }
}
