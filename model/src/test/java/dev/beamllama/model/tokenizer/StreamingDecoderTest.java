package dev.beamllama.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.Fixtures;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class StreamingDecoderTest {
  private static Tokenizer tokenizer;

  @BeforeAll
  static void load() {
    tokenizer = Tokenizer.load(Fixtures.llama3TokenizerDir().resolve("tokenizer.json"));
  }

  @AfterAll
  static void close() {
    tokenizer.close();
  }

  @ParameterizedTest
  @ValueSource(strings = {
      "<|eot_id|> 특수 토큰이 본문에 있을 때", // '토' is split across three byte-level tokens
      "😀😃😄 👨‍👩‍👧‍👦 emoji families",
      "피보나치 수열은 0과 1로 시작합니다.",
      "東京と北京、そして서울"})
  void emitsOnlyWholeCharactersAndReassemblesTheText(String text) {
    int[] ids = tokenizer.encode(text, false);
    StreamingDecoder stream = new StreamingDecoder(tokenizer, false);
    StringBuilder out = new StringBuilder();
    int held = 0;
    for (int id : ids) {
      String piece = stream.push(id);
      assertTrue(piece.indexOf('\uFFFD') < 0, "emitted a broken character after token " + id + ": " + piece);
      if (piece.isEmpty()) {
        held++;
      }
      out.append(piece);
    }
    out.append(stream.flush());
    assertEquals(text, out.toString());
    if (text.contains("토")) {
      assertTrue(held > 0, "the split syllable must have been held back at least once");
    }
  }
}
