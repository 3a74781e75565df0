package dev.beamllama.model.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.beamllama.model.Fixtures;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** scripts/llama as a user runs it, in-process: the JSON it prints reproduces transformers' numbers. */
class LlamaCliTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  record Run(int status, String out, String err) {
    JsonNode json() throws Exception {
      return JSON.readTree(out);
    }
  }

  static Run run(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int status = new LlamaCli(new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8)).run(args);
    return new Run(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  private static String ids(int[] ids) {
    return Arrays.stream(ids).mapToObj(Integer::toString).collect(Collectors.joining(","));
  }

  @Test
  void logitsAndGreedyGenerateReproduceTransformers() throws Exception {
    JsonNode expected = Fixtures.json("hf-golden/tiny-llama31-ropescaled-expected.json").get("cases").get(1);
    String model = Fixtures.goldenCheckpoint("tiny-llama31-ropescaled-f32").toString();
    int[] prompt = Fixtures.ints(expected.get("prompt"));

    Run logits = run("logits", "--model", model, "--prompt-ids", ids(prompt), "--json");
    assertEquals(0, logits.status(), logits.err());
    JsonNode rows = logits.json().get("logits");
    assertEquals(prompt.length, rows.size());
    for (int pos = 0; pos < prompt.length; pos++) {
      float[] got = Fixtures.floats(rows.get(pos));
      float[] want = Fixtures.floats(expected.get("prefill_logits").get(pos));
      double diff = 0;
      double norm = 0;
      for (int i = 0; i < want.length; i++) {
        diff += (got[i] - want[i]) * (double) (got[i] - want[i]);
        norm += want[i] * (double) want[i];
      }
      assertTrue(Math.sqrt(diff / norm) < 1e-4, "position " + pos);
    }

    int[] greedy = Fixtures.ints(expected.get("greedy_continuation"));
    Run generate = run("generate", "--model", model, "--prompt-ids", ids(prompt), "--greedy",
        "--max-new-tokens", Integer.toString(greedy.length), "--json");
    assertEquals(0, generate.status(), generate.err());
    JsonNode result = generate.json();
    assertArrayEquals(greedy, Fixtures.ints(result.get("token_ids")));
    assertEquals("length", result.get("finish_reason").asText());
    assertEquals(greedy.length, result.get("completion_tokens").asInt());
    assertTrue(result.get("completion").isNull(), "a checkpoint without tokenizer has no text");

    Run int8 = run("logits", "--model", model, "--prompt-ids", ids(prompt), "--weights", "int8", "--json");
    assertEquals(0, int8.status(), int8.err());
    JsonNode int8Rows = int8.json().get("logits");
    double differs = 0;
    for (int pos = 0; pos < prompt.length; pos++) {
      float[] got = Fixtures.floats(int8Rows.get(pos));
      float[] exact = Fixtures.floats(rows.get(pos));
      for (int i = 0; i < exact.length; i++) {
        differs = Math.max(differs, Math.abs(got[i] - exact[i]));
      }
    }
    assertTrue(differs > 0, "--weights int8 must change the numbers (it quantizes)");
  }

  @Test
  void sampledGenerateIsReproducibleFromItsSeed() throws Exception {
    String model = Fixtures.goldenCheckpoint("tiny-llama3-bf16").toString();
    Run first = run("generate", "--model", model, "--prompt-ids", "5,6,7", "--seed", "42", "--max-new-tokens", "20", "--json");
    Run second = run("generate", "--model", model, "--prompt-ids", "5,6,7", "--seed", "42", "--max-new-tokens", "20", "--json");
    assertEquals(0, first.status(), first.err());
    assertEquals(first.json().get("token_ids"), second.json().get("token_ids"));
    JsonNode sampling = first.json().get("sampling");
    assertEquals(0.9, sampling.get("temperature").asDouble());
    assertEquals(40, sampling.get("top_k").asInt());
    assertEquals(0.9, sampling.get("top_p").asDouble());
    assertEquals(1.1, sampling.get("repetition_penalty").asDouble());
  }

  @Test
  void tokenizerCommandsOnTheRealTokenizer(@TempDir Path dir) throws Exception {
    Path model = dir.resolve("model");
    Files.createDirectories(model);
    Path tokenizer = Fixtures.llama3TokenizerDir();
    Files.copy(tokenizer.resolve("tokenizer.json"), model.resolve("tokenizer.json"));
    Files.copy(tokenizer.resolve("tokenizer_config.json"), model.resolve("tokenizer_config.json"));

    Run tokenize = run("tokenize", "--model", model.toString(), "--text", "피보나치 수열에 대해 설명해주세요.", "--json");
    assertEquals(0, tokenize.status(), tokenize.err());
    int[] ids = Fixtures.ints(tokenize.json().get("ids"));
    assertArrayEquals(new int[] {102477, 42771, 61415, 60798, 29833, 55055, 19954, 112107, 114942, 34983, 92769, 13}, ids);

    Run detokenize = run("detokenize", "--model", model.toString(), "--ids", ids(ids), "--json");
    assertEquals("피보나치 수열에 대해 설명해주세요.", detokenize.json().get("text").asText());

    Path messages = dir.resolve("messages.json");
    Files.writeString(messages, """
        [{"role": "system", "content": "다음 지시사항에 대한 응답을 작성해주세요."},
         {"role": "user", "content": "피보나치 수열에 대해 설명해주세요."}]
        """);
    Run chat = run("chat-template", "--model", model.toString(), "--messages", messages.toString(), "--add-generation-prompt", "--json");
    assertEquals(0, chat.status(), chat.err());
    JsonNode golden = Fixtures.json("hf-golden/tokenizer-expected.json").get("chat").get(0);
    assertEquals(golden.get("prompt_agp_True").asText(), chat.json().get("prompt").asText());
    assertEquals(golden.get("ids_agp_True"), chat.json().get("ids"));

    Run plain = run("chat-template", "--model", model.toString(), "--messages", messages.toString());
    assertEquals(golden.get("prompt_agp_False").asText(), plain.out());
  }

  @Test
  void badCommandLinesAndInputsAreClearErrors(@TempDir Path dir) {
    String model = Fixtures.goldenCheckpoint("tiny-llama3-f32").toString();
    Run unknown = run("generate", "--model", model, "--prompt-ids", "1", "--temprature", "1");
    assertEquals(2, unknown.status());
    assertTrue(unknown.err().contains("unknown option --temprature"), unknown.err());

    Run two = run("generate", "--model", model, "--prompt-ids", "1", "--prompt", "x");
    assertEquals(2, two.status());

    Run greedyAndTemperature = run("generate", "--model", model, "--prompt-ids", "1", "--greedy", "--temperature", "0.7");
    assertEquals(2, greedyAndTemperature.status());
    assertTrue(greedyAndTemperature.err().contains("--greedy takes the argmax"), greedyAndTemperature.err());

    Run outside = run("logits", "--model", model, "--prompt-ids", "1,99999");
    assertEquals(1, outside.status());
    assertTrue(outside.err().contains("99999"), outside.err());

    Run missing = run("logits", "--model", dir.resolve("nope").toString(), "--prompt-ids", "1");
    assertEquals(1, missing.status());
    assertTrue(missing.err().contains("not a checkpoint directory"), missing.err());

    Run badWeights = run("logits", "--model", model, "--prompt-ids", "1", "--weights", "int4");
    assertEquals(2, badWeights.status());
    assertTrue(badWeights.err().contains("unknown --weights 'int4': use checkpoint or int8"), badWeights.err());

    Run badTemperature = run("generate", "--model", model, "--prompt-ids", "1", "--temperature", "-1");
    assertEquals(1, badTemperature.status());
    assertTrue(badTemperature.err().contains("temperature"), badTemperature.err());
  }
}
