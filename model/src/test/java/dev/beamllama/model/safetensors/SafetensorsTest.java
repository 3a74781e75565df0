package dev.beamllama.model.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.CheckpointException;
import dev.beamllama.model.Fixtures;
import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.llama.LlamaWeights;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsTest {
  @TempDir Path dir;

  private Path write(String name, SafetensorsWriter writer) throws IOException {
    Path file = dir.resolve(name);
    writer.write(file);
    return file;
  }

  @Test
  void readsEveryDtypeBackInPlace() throws IOException {
    float[] values = {1.5f, -2.25f, 0.125f, 3f, -0.5f, 1024f};
    Path file = write("model.safetensors", new SafetensorsWriter()
        .add("a", DType.F32, values, 2, 3)
        .add("b", DType.BF16, values, 3, 2)
        .add("c", DType.F16, values, 6));
    try (Arena arena = Arena.ofConfined()) {
      SafetensorsFile st = SafetensorsFile.open(file, arena);
      for (String name : new String[] {"a", "b", "c"}) {
        assertArrayEquals(values, st.tensor(name).toFloatArray(), name);
      }
      assertArrayEquals(new long[] {3, 2}, st.tensor("b").shape());
      assertTrue(st.tensor("a").data().isMapped(), "tensors are read from the mapping, not copied");
    }
  }

  @Test
  void truncatedFileNamesFileAndTensor() throws IOException {
    Path file = write("model.safetensors", new SafetensorsWriter().add("weight", DType.F32, new float[64], 8, 8));
    byte[] bytes = Files.readAllBytes(file);
    Files.write(file, Arrays.copyOf(bytes, bytes.length - 10));
    CheckpointException e = assertThrows(CheckpointException.class, () -> open(file));
    assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("'weight'") && e.getMessage().contains("truncated"), e.getMessage());
  }

  @Test
  void fileShorterThanTheLengthPrefix() throws IOException {
    Path file = dir.resolve("model.safetensors");
    Files.write(file, new byte[] {1, 2, 3});
    CheckpointException e = assertThrows(CheckpointException.class, () -> open(file));
    assertTrue(e.getMessage().contains("truncated"), e.getMessage());
  }

  @Test
  void oversizedHeaderIsRefusedBeforeReading() throws IOException {
    Path file = dir.resolve("model.safetensors");
    Files.write(file, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(Long.MAX_VALUE / 2).array());
    CheckpointException e = assertThrows(CheckpointException.class, () -> open(file));
    assertTrue(e.getMessage().contains("oversized"), e.getMessage());
  }

  @Test
  void headerLongerThanTheFileIsTruncation() throws IOException {
    Path file = dir.resolve("model.safetensors");
    Files.write(file, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1000).array());
    CheckpointException e = assertThrows(CheckpointException.class, () -> open(file));
    assertTrue(e.getMessage().contains("truncated"), e.getMessage());
  }

  @Test
  void malformedHeaderJson() throws IOException {
    Path file = rawFile("{\"weight\": {\"dtype\": \"F32\", \"shape\": [2], ");
    CheckpointException e = assertThrows(CheckpointException.class, () -> open(file));
    assertTrue(e.getMessage().contains("malformed"), e.getMessage());
  }

  @Test
  void shapeThatDisagreesWithTheByteRange() throws IOException {
    Path file = rawFile("{\"weight\": {\"dtype\": \"F32\", \"shape\": [4, 4], \"data_offsets\": [0, 8]}}", 8);
    CheckpointException e = assertThrows(CheckpointException.class, () -> open(file));
    assertTrue(e.getMessage().contains("'weight'") && e.getMessage().contains("needs 64 bytes"), e.getMessage());
  }

  @Test
  void unknownDtypeIsReportedWhenTheTensorIsUsed() throws IOException {
    Path file = rawFile("{\"weight\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 8);
    try (Arena arena = Arena.ofConfined()) {
      SafetensorsFile st = SafetensorsFile.open(file, arena);
      CheckpointException e = assertThrows(CheckpointException.class, () -> st.tensor("weight"));
      assertTrue(e.getMessage().contains("I64") && e.getMessage().contains("'weight'") && e.getMessage().contains(file.toString()), e.getMessage());
    }
  }

  @Test
  void missingTensorAndWrongShapeNameTheTensor() throws IOException {
    Path checkpoint = Files.createDirectories(dir.resolve("ckpt"));
    new SafetensorsWriter().add("present", DType.F32, new float[6], 2, 3).write(checkpoint.resolve("model.safetensors"));
    try (SafetensorsCheckpoint st = SafetensorsCheckpoint.open(checkpoint)) {
      CheckpointException missing = assertThrows(CheckpointException.class, () -> st.tensor("absent"));
      assertTrue(missing.getMessage().contains("missing tensor 'absent'"), missing.getMessage());
      CheckpointException shape = assertThrows(CheckpointException.class, () -> st.tensor("present", 3, 2));
      assertTrue(shape.getMessage().contains("'present' has shape [2, 3], expected [3, 2]"), shape.getMessage());
    }
  }

  @Test
  void llamaWeightsWithAMissingLayerNameTheTensor() throws IOException {
    Path golden = Fixtures.goldenCheckpoint("tiny-llama3-f32");
    LlamaConfig config = LlamaConfig.read(golden.resolve("config.json"));
    Path checkpoint = Files.createDirectories(dir.resolve("partial"));
    try (SafetensorsCheckpoint full = SafetensorsCheckpoint.open(golden)) {
      SafetensorsWriter writer = new SafetensorsWriter();
      for (String name : new String[] {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"}) {
        Tensor t = full.tensor(name);
        writer.add(name, t.dtype(), t.toFloatArray(), t.shape());
      }
      writer.write(checkpoint.resolve("model.safetensors"));
    }
    try (SafetensorsCheckpoint partial = SafetensorsCheckpoint.open(checkpoint)) {
      CheckpointException e = assertThrows(CheckpointException.class, () -> LlamaWeights.load(partial, config));
      assertTrue(e.getMessage().contains("model.layers.0.input_layernorm.weight"), e.getMessage());
    }
  }

  @Test
  void shardedCheckpointReadsTheSameTensorsAsOneFile() throws IOException {
    Path golden = Fixtures.goldenCheckpoint("tiny-llama3-f32");
    Path sharded = Files.createDirectories(dir.resolve("sharded"));
    StringBuilder weightMap = new StringBuilder();
    try (SafetensorsCheckpoint single = SafetensorsCheckpoint.open(golden);
        Arena arena = Arena.ofConfined()) {
      var names = SafetensorsFile.open(golden.resolve("model.safetensors"), arena).tensorNames().stream().sorted().toList();
      SafetensorsWriter first = new SafetensorsWriter();
      SafetensorsWriter second = new SafetensorsWriter();
      for (int i = 0; i < names.size(); i++) {
        Tensor t = single.tensor(names.get(i));
        String shard = i % 2 == 0 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
        (i % 2 == 0 ? first : second).add(t.name(), t.dtype(), t.toFloatArray(), t.shape());
        weightMap.append(weightMap.isEmpty() ? "" : ",").append('"').append(t.name()).append("\":\"").append(shard).append('"');
      }
      first.write(sharded.resolve("model-00001-of-00002.safetensors"));
      second.write(sharded.resolve("model-00002-of-00002.safetensors"));
      Files.writeString(sharded.resolve("model.safetensors.index.json"), "{\"metadata\":{},\"weight_map\":{" + weightMap + "}}");
      try (SafetensorsCheckpoint shards = SafetensorsCheckpoint.open(sharded)) {
        for (String name : names) {
          assertArrayEquals(single.tensor(name).toFloatArray(), shards.tensor(name).toFloatArray(), name);
        }
      }
    }
  }

  @Test
  void indexPointingAtAMissingShard() throws IOException {
    Path sharded = Files.createDirectories(dir.resolve("broken"));
    Files.writeString(sharded.resolve("model.safetensors.index.json"), "{\"weight_map\":{\"w\":\"model-00001-of-00002.safetensors\"}}");
    CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsCheckpoint.open(sharded));
    assertTrue(e.getMessage().contains("model-00001-of-00002.safetensors") && e.getMessage().contains("'w'"), e.getMessage());
  }

  @Test
  void shardsOutsideTheCheckpointDirectoryAreRefused() throws IOException {
    Path sharded = Files.createDirectories(dir.resolve("escaping"));
    Files.writeString(dir.resolve("secret.safetensors"), "not for the model");
    for (String shard : new String[] {"../secret.safetensors", "/etc/passwd", "sub/../../secret.safetensors"}) {
      Files.writeString(sharded.resolve("model.safetensors.index.json"), "{\"weight_map\":{\"w\":\"" + shard + "\"}}");
      CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsCheckpoint.open(sharded));
      assertTrue(e.getMessage().contains("outside the checkpoint directory"), e.getMessage());
    }
  }

  @Test
  void directoryWithoutWeights() {
    CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsCheckpoint.open(dir));
    assertTrue(e.getMessage().contains("model.safetensors"), e.getMessage());
  }

  @Test
  void bf16RoundsToNearestEven() {
    assertEquals(1.0f, DType.roundToBf16(1.0f + 0x1p-9f)); // halfway: ties to even (down)
    assertEquals(1.0f + 0x1p-7f, DType.roundToBf16(1.0f + 0x1p-7f + 0x1p-9f)); // halfway: ties to even (up)
    assertEquals(1.0f + 0x1p-7f, DType.roundToBf16(1.0f + 0x1p-8f + 0x1p-12f));
  }

  private void open(Path file) {
    try (Arena arena = Arena.ofConfined()) {
      SafetensorsFile.open(file, arena);
    }
  }

  private Path rawFile(String header) throws IOException {
    return rawFile(header, 0);
  }

  private Path rawFile(String header, int dataBytes) throws IOException {
    byte[] json = header.getBytes(StandardCharsets.UTF_8);
    ByteBuffer buffer = ByteBuffer.allocate(8 + json.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
    buffer.putLong(json.length).put(json);
    Path file = dir.resolve("raw.safetensors");
    Files.write(file, buffer.array());
    return file;
  }
}
