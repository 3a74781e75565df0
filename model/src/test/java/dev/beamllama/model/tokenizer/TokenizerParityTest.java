package dev.beamllama.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.beamllama.model.CheckpointException;
import dev.beamllama.model.Fixtures;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The Llama 3 tokenizer against Hugging Face's AutoTokenizer on the fixture strings. */
class TokenizerParityTest {
  private static Tokenizer tokenizer;

  @BeforeAll
  static void load() {
    tokenizer = Tokenizer.load(Fixtures.llama3TokenizerDir().resolve("tokenizer.json"));
  }

  @AfterAll
  static void close() {
    tokenizer.close();
  }

  static Stream<JsonNode> encodeCases() {
    List<JsonNode> cases = new ArrayList<>();
    Fixtures.json("hf-golden/tokenizer-expected.json").get("encode").forEach(cases::add);
    return cases.stream();
  }

  @ParameterizedTest(name = "{index}")
  @MethodSource("encodeCases")
  void idsAndDecodeMatchTransformers(JsonNode c) {
    String text = c.get("text").asText();
    assertArrayEquals(Fixtures.ints(c.get("ids")), tokenizer.encode(text, false), "ids of " + text);
    assertArrayEquals(Fixtures.ints(c.get("ids_with_special")), tokenizer.encode(text, true), "ids with special tokens of " + text);
    assertEquals(c.get("decoded").asText(), tokenizer.decode(Fixtures.ints(c.get("ids")), false), "decode of " + text);
  }

  @Test
  void vocabularyAndSpecialTokens() {
    assertEquals(128256, tokenizer.vocabularySize());
    assertEquals(128009, tokenizer.specialTokenId("<|eot_id|>").orElseThrow());
    assertEquals(128000, tokenizer.specialTokenId("<|begin_of_text|>").orElseThrow());
    assertTrue(tokenizer.isSpecial(128001));
    assertTrue(!tokenizer.isSpecial(13));
  }

  @Test
  void noTruncationOfLongInputs() {
    String longText = "서울은 대한민국의 수도이다. ".repeat(2000);
    int[] ids = tokenizer.encode(longText, false);
    assertTrue(ids.length > 10_000, "a long text must not be cut at 512 tokens, got " + ids.length);
    assertEquals(longText, tokenizer.decode(ids, false));
  }

  @Test
  void plainTextEncodingNeverProducesSpecialTokens() {
    String text = "<|eot_id|><|start_header_id|>system<|end_header_id|>";
    int[] parsed = tokenizer.encode(text, false);
    assertArrayEquals(new int[] {128009, 128006, 9125, 128007}, parsed);
    int[] plain = tokenizer.encodePlainText(text);
    for (int id : plain) {
      assertTrue(!tokenizer.isSpecial(id), "special token " + id + " in plain-text encoding");
    }
    assertEquals(text, tokenizer.decode(plain, false));
  }

  @Test
  void skipSpecialTokensOnDecode() {
    assertEquals("안녕", tokenizer.decode(concat(tokenizer.encode("안녕", false), new int[] {128009}), true));
  }

  @Test
  void tokenizerLargerThanModelVocabularyIsRejected() {
    CheckpointException e = assertThrows(CheckpointException.class, () -> tokenizer.checkFits(512));
    assertTrue(e.getMessage().contains("vocab_size is 512"), e.getMessage());
  }

  @Test
  void unreadableTokenizerFileNamesTheFile(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("tokenizer.json");
    Files.writeString(file, "{\"not\": \"a tokenizer\"}");
    CheckpointException e = assertThrows(CheckpointException.class, () -> Tokenizer.load(file));
    assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
  }

  private static int[] concat(int[] a, int[] b) {
    int[] c = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, c, a.length, b.length);
    return c;
  }
}
