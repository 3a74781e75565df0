package dev.beamllama.model.demo;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.Engines;
import dev.beamllama.model.Fixtures;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.chat.ChatMessage;
import dev.beamllama.model.chat.PromptEncoder;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.GenerationResult;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.sampling.SamplingParams;
import dev.beamllama.model.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The demo checkpoint end to end: real tokenizer and chat template, 128256-token vocabulary, bf16. */
class DemoCheckpointTest {
  @TempDir static Path dir;
  static ModelDirectory model;

  @BeforeAll
  static void write() throws Exception {
    DemoCheckpoint.write(dir.resolve("demo"), Fixtures.llama3TokenizerDir());
    model = new ModelDirectory(dir.resolve("demo"));
  }

  private static int[] chatPrompt(Tokenizer tokenizer, String user) {
    PromptEncoder encoder = new PromptEncoder(model.chatTemplate(), tokenizer, PromptEncoder.SpecialTokens.PLAIN);
    return encoder.encode(List.of(ChatMessage.system("다음 지시사항에 대한 응답을 작성해주세요."), ChatMessage.user(user)), true).ids();
  }

  @Test
  void isALlama3CheckpointThatSaysItIsRandom() {
    assertTrue(model.isDemo());
    assertEquals(128256, model.config().vocabSize());
    assertArrayEquals(new int[] {128001, 128009}, model.stopTokenIds());
    try (Tokenizer tokenizer = model.tokenizer()) {
      assertEquals(128256, tokenizer.vocabularySize());
    }
  }

  @Test
  void sameSeedSameTextAloneOrInABatchOfEightOthers() {
    try (Tokenizer tokenizer = model.tokenizer();
        LlmEngine engine = Engines.cpu(model, EngineOptions.defaults().withMaxNumSeqs(9))) {
      int[] prompt = chatPrompt(tokenizer, "피보나치 수열에 대해 설명해주세요.");
      SamplingParams params = SamplingParams.modelCard(2024).withMaxNewTokens(24);
      GenerationResult alone = engine.generate(new GenerationRequest("alone", prompt, params));
      GenerationResult again = engine.generate(new GenerationRequest("again", prompt, params));
      assertArrayEquals(alone.tokenIds(), again.tokenIds());

      List<CompletableFuture<GenerationResult>> others = new ArrayList<>();
      for (int i = 0; i < 8; i++) {
        others.add(engine.submit(new GenerationRequest("other" + i, chatPrompt(tokenizer, "질문 " + i + "번: 서울의 인구는?"),
            SamplingParams.modelCard(i).withMaxNewTokens(16 + i))));
      }
      GenerationResult batched = engine.submit(new GenerationRequest("batched", prompt, params)).join();
      others.forEach(CompletableFuture::join);
      assertArrayEquals(alone.tokenIds(), batched.tokenIds());
      assertEquals(tokenizer.decode(alone.tokenIds(), true), tokenizer.decode(batched.tokenIds(), true));
      assertTrue(engine.stats().meanBatchSize() > 1.5, "the nine requests shared steps: " + engine.stats().meanBatchSize());
    }
  }
}
