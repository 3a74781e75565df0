package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.beamllama.model.cuda.CudaModelRunner;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The job with {@code --engine=cuda} on the demo checkpoint, on a GPU or the emulated CUDA device
 * (the build puts it on the tests' LD_LIBRARY_PATH): every record reaches the completions with
 * every sample it asked for, and the same job twice gives the same records. Skipped, with the
 * reason, where no CUDA device is usable, unless BEAM_LLAMA_REQUIRE_CUDA=1 (CI) makes that a failure.
 */
class CudaEngineJobTest {
  @TempDir static Path dir;

  @Test
  void everyRecordIsAccountedForAndTheSameJobGivesTheSameRecords() throws Exception {
    CudaModelRunner.Probe gpu = CudaModelRunner.probe();
    if (!gpu.usable()) {
      String why = "no CUDA device for the job: " + gpu.unavailableReason();
      if ("1".equals(System.getenv("BEAM_LLAMA_REQUIRE_CUDA"))) {
        fail(why + " (BEAM_LLAMA_REQUIRE_CUDA=1: build the emulator with scripts/build-cuda-emulator)");
      }
      assumeTrue(false, why);
    }
    List<String> lines = new ArrayList<>();
    Map<String, Integer> expected = new HashMap<>();
    for (int i = 0; i < 6; i++) {
      String id = "cuda-" + i;
      lines.add(i % 3 == 2
          ? "{\"id\": \"" + id + "\", \"user\": \"짧은 시를 써 주세요 " + i + "\", \"n\": 2}"
          : "{\"id\": \"" + id + "\", \"user\": \"서울의 인구는 얼마나 되나요? (" + i + ")\"}");
      expected.put(id, i % 3 == 2 ? 2 : 1);
    }
    Path input = TestJob.writeJsonl(dir.resolve("in/prompts.jsonl"), lines);
    List<List<String>> runs = new ArrayList<>();
    for (String run : new String[] {"a", "b"}) {
      TestJob.Run job = TestJob.run("--input=" + input, "--output=" + dir.resolve(run + "/c.jsonl"), "--model=" + TestJob.demoModel(),
          "--engine=cuda", "--maxNewTokens=6");
      List<JsonNode> completions = TestJob.shards(dir.resolve(run + "/c").toString(), ".jsonl");
      Map<String, Integer> samples = new HashMap<>();
      completions.forEach(c -> samples.merge(c.get("id").asText(), 1, Integer::sum));
      assertEquals(expected, samples, "every record, with every sample it asked for, exactly once");
      assertEquals(6, job.summary().recordsRead());
      assertEquals(0, job.summary().deadLetters());
      JsonNode summary = TestJob.JSON.readTree(dir.resolve(run + "/c-report/summary.json").toFile());
      String ranOn = summary.get("engine").get("ran_on").toString();
      assertTrue(ranOn.contains("cuda ("), ranOn);
      assertEquals(gpu.emulated(), ranOn.contains("EMULATED"), ranOn);
      runs.add(TestJob.comparable(completions));
    }
    assertEquals(runs.get(0), runs.get(1), "the same job twice");
  }
}
