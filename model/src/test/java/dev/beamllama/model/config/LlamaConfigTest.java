package dev.beamllama.model.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.CheckpointException;
import dev.beamllama.model.Fixtures;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LlamaConfigTest {
  @Test
  void readsTheTransformers4LayoutOfLlama3Instruct() {
    LlamaConfig c = LlamaConfig.read(Fixtures.resource("llama3-8b-instruct-config/config.json"));
    assertEquals(128256, c.vocabSize());
    assertEquals(4096, c.hiddenSize());
    assertEquals(14336, c.intermediateSize());
    assertEquals(32, c.numLayers());
    assertEquals(32, c.numHeads());
    assertEquals(8, c.numKvHeads());
    assertEquals(128, c.headDim());
    assertEquals(8192, c.maxPositionEmbeddings());
    assertEquals(RopeConfig.unscaled(500000.0), c.rope());
    assertEquals(List.of(128009), c.eosTokenIds());
    GenerationConfig g = GenerationConfig.readIfPresent(Fixtures.resource("llama3-8b-instruct-config/generation_config.json"));
    assertEquals(List.of(128001, 128009), g.eosTokenIds());
  }

  @Test
  void readsTheTransformers5LayoutWithLlama31Scaling() {
    LlamaConfig c = LlamaConfig.read(Fixtures.goldenCheckpoint("tiny-llama31-ropescaled-f32").resolve("config.json"));
    assertEquals(new RopeConfig(500000.0, RopeConfig.Type.LLAMA3, 8.0, 1.0, 4.0, 64), c.rope());
    assertEquals(16, c.headDim());
    assertEquals(1, c.numKvHeads());
    assertEquals(List.of(), c.eosTokenIds());
  }

  @Test
  void readsTransformers4Llama31Scaling(@TempDir Path dir) throws IOException {
    Path file = dir.resolve("config.json");
    Files.writeString(file, """
        {"vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
         "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072,
         "rope_theta": 500000.0, "tie_word_embeddings": false, "eos_token_id": [128001, 128008, 128009],
         "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 8192, "rope_type": "llama3"}}
        """);
    LlamaConfig c = LlamaConfig.read(file);
    assertEquals(new RopeConfig(500000.0, RopeConfig.Type.LLAMA3, 8.0, 1.0, 4.0, 8192), c.rope());
    assertEquals(List.of(128001, 128008, 128009), c.eosTokenIds());
  }

  @Test
  void unsupportedSettingsAreClearErrors(@TempDir Path dir) throws IOException {
    Path file = dir.resolve("config.json");
    Files.writeString(file, "{\"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, \"num_hidden_layers\": 1,"
        + " \"num_attention_heads\": 2, \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4}}");
    CheckpointException e = assertThrows(CheckpointException.class, () -> LlamaConfig.read(file));
    assertTrue(e.getMessage().contains("yarn") && e.getMessage().contains(file.toString()), e.getMessage());

    Files.writeString(file, "{\"model_type\": \"mistral\"}");
    e = assertThrows(CheckpointException.class, () -> LlamaConfig.read(file));
    assertTrue(e.getMessage().contains("mistral"), e.getMessage());

    Files.writeString(file, "{\"hidden_size\": \"big\"}");
    e = assertThrows(CheckpointException.class, () -> LlamaConfig.read(file));
    assertTrue(e.getMessage().contains("hidden_size"), e.getMessage());

    e = assertThrows(CheckpointException.class, () -> LlamaConfig.read(dir.resolve("absent.json")));
    assertTrue(e.getMessage().contains("missing"), e.getMessage());
  }
}
