package dev.beamllama.model.llama;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.beamllama.model.Fixtures;
import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;
import java.io.RandomAccessFile;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A checkpoint of the real Llama-3-8B shape (16 GB of bf16, written as a sparse file so it costs no
 * disk) opens and validates without its weights landing on the heap.
 */
class LargeCheckpointTest {
  @Test
  void an8bCheckpointOpensMemoryMappedWithoutHeapCopies(@TempDir Path dir) throws Exception {
    LlamaConfig config = LlamaConfig.read(Fixtures.resource("llama3-8b-instruct-config/config.json"));
    Map<String, long[]> shapes = new LinkedHashMap<>();
    long h = config.hiddenSize();
    shapes.put("model.embed_tokens.weight", new long[] {config.vocabSize(), h});
    for (int l = 0; l < config.numLayers(); l++) {
      String p = "model.layers." + l + ".";
      shapes.put(p + "input_layernorm.weight", new long[] {h});
      shapes.put(p + "self_attn.q_proj.weight", new long[] {config.queryDim(), h});
      shapes.put(p + "self_attn.k_proj.weight", new long[] {config.kvDim(), h});
      shapes.put(p + "self_attn.v_proj.weight", new long[] {config.kvDim(), h});
      shapes.put(p + "self_attn.o_proj.weight", new long[] {h, config.queryDim()});
      shapes.put(p + "post_attention_layernorm.weight", new long[] {h});
      shapes.put(p + "mlp.gate_proj.weight", new long[] {config.intermediateSize(), h});
      shapes.put(p + "mlp.up_proj.weight", new long[] {config.intermediateSize(), h});
      shapes.put(p + "mlp.down_proj.weight", new long[] {h, config.intermediateSize()});
    }
    shapes.put("model.norm.weight", new long[] {h});
    shapes.put("lm_head.weight", new long[] {config.vocabSize(), h});

    ObjectNode header = new ObjectMapper().createObjectNode();
    long offset = 0;
    for (Map.Entry<String, long[]> e : shapes.entrySet()) {
      long bytes = 2;
      ObjectNode t = header.putObject(e.getKey());
      t.put("dtype", "BF16");
      var shape = t.putArray("shape");
      for (long d : e.getValue()) {
        shape.add(d);
        bytes *= d;
      }
      t.putArray("data_offsets").add(offset).add(offset + bytes);
      offset += bytes;
    }
    assertTrue(offset > 16_000_000_000L, "the 8B shape is about 16 GB of bf16: " + offset);
    byte[] json = header.toString().getBytes(StandardCharsets.UTF_8);
    try (RandomAccessFile file = new RandomAccessFile(dir.resolve("model.safetensors").toFile(), "rw")) {
      file.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(json.length).array());
      file.write(json);
      file.setLength(8 + json.length + offset); // sparse: the tensor bytes are a hole
    }
    Files.copy(Fixtures.resource("llama3-8b-instruct-config/config.json"), dir.resolve("config.json"));

    System.gc();
    long heapBefore = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    try (SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint.open(dir)) {
      LlamaWeights weights = LlamaWeights.load(checkpoint, config);
      System.gc();
      long heapAfter = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
      assertEquals(32, weights.layers.length);
      assertTrue(weights.lmHead.data().isMapped());
      assertTrue(heapAfter - heapBefore < 64L << 20, "loading grew the heap by " + ((heapAfter - heapBefore) >> 20) + " MB");
    }
  }
}
