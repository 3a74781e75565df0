package dev.beamllama.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Random-weight bf16 Llama 3 checkpoints of a real model's shape, for benchmarks: written tensor by
 * tensor straight to disk (a 1B model is 2.5 GB; nothing is held in memory), with the real
 * tokenizer so other engines (Jlama) load the same directory. Weights are uniform with the
 * std of transformers' initialisation (0.02), from a fixed-seed xorshift: the same bytes every run.
 *
 * <p>{@code RandomCheckpoint OUTPUT_DIR TOKENIZER_DIR [llama-3.2-1b]}
 */
public final class RandomCheckpoint {
  /** A Llama 3 shape. */
  public record Shape(String name, int hidden, int intermediate, int layers, int heads, int kvHeads, int vocab, boolean tiedEmbeddings) {
    int headDim() {
      return hidden / heads;
    }
  }

  public static final Shape LLAMA_32_1B = new Shape("llama-3.2-1b", 2048, 8192, 16, 32, 8, 128256, true);
  /** Meta-Llama-3-8B-Instruct's shape, and so Waktaverse-Llama-3-KO-8B-Instruct's: 16 GB in bf16. */
  public static final Shape LLAMA_3_8B = new Shape("llama-3-8b", 4096, 14336, 32, 32, 8, 128256, false);
  private static final List<Shape> SHAPES = List.of(LLAMA_32_1B, LLAMA_3_8B);
  private static final float UNIFORM_BOUND = (float) (0.02 * Math.sqrt(3)); // uniform(-b, b) has std b / sqrt(3)

  private RandomCheckpoint() {}

  public static void main(String[] args) throws IOException {
    String names = SHAPES.stream().map(Shape::name).collect(java.util.stream.Collectors.joining("|"));
    String wanted = args.length > 2 ? args[2] : LLAMA_32_1B.name();
    Shape shape = SHAPES.stream().filter(s -> s.name().equals(wanted)).findFirst().orElse(null);
    if (args.length < 2 || args.length > 3 || shape == null) {
      System.err.println("usage: RandomCheckpoint OUTPUT_DIR TOKENIZER_DIR [" + names + "]"
          + (shape == null ? " (no shape " + wanted + ")" : ""));
      System.exit(2);
    }
    write(Path.of(args[0]), Path.of(args[1]), shape);
    System.out.println(Path.of(args[0]).toAbsolutePath());
  }

  /** Writes the checkpoint; {@code tokenizerDir} null leaves the tokenizer out (enough for the engines' runners, not for ModelDirectory). */
  public static void write(Path dir, Path tokenizerDir, Shape shape) throws IOException {
    Files.createDirectories(dir);
    for (String file : tokenizerDir == null ? new String[0] : new String[] {"tokenizer.json", "tokenizer_config.json"}) {
      Files.copy(tokenizerDir.resolve(file), dir.resolve(file), StandardCopyOption.REPLACE_EXISTING);
    }
    ObjectMapper json = new ObjectMapper();
    ObjectNode c = json.createObjectNode();
    c.putArray("architectures").add("LlamaForCausalLM");
    c.put("model_type", "llama").put("hidden_act", "silu").put("attention_bias", false).put("mlp_bias", false);
    c.put("hidden_size", shape.hidden()).put("intermediate_size", shape.intermediate()).put("num_hidden_layers", shape.layers());
    c.put("num_attention_heads", shape.heads()).put("num_key_value_heads", shape.kvHeads()).put("head_dim", shape.headDim());
    c.put("vocab_size", shape.vocab()).put("max_position_embeddings", 8192).put("rms_norm_eps", 1e-5).put("rope_theta", 500000.0);
    c.putNull("rope_scaling");
    c.put("tie_word_embeddings", shape.tiedEmbeddings()).put("torch_dtype", "bfloat16");
    c.put("bos_token_id", 128000).put("eos_token_id", 128001);
    Files.writeString(dir.resolve("config.json"), json.writerWithDefaultPrettyPrinter().writeValueAsString(c));
    Files.writeString(dir.resolve("generation_config.json"), "{\"bos_token_id\": 128000, \"eos_token_id\": [128001, 128009]}\n");
    Path tmp = dir.resolve("model.safetensors.tmp");
    writeWeights(tmp, shape);
    Files.move(tmp, dir.resolve("model.safetensors"), StandardCopyOption.REPLACE_EXISTING);
  }

  private record TensorSpec(String name, long[] shape, boolean ones) {
    long elements() {
      long n = 1;
      for (long d : shape) {
        n *= d;
      }
      return n;
    }
  }

  private static List<TensorSpec> tensors(Shape s) {
    List<TensorSpec> t = new ArrayList<>();
    long kv = (long) s.kvHeads() * s.headDim();
    t.add(new TensorSpec("model.embed_tokens.weight", new long[] {s.vocab(), s.hidden()}, false));
    for (int l = 0; l < s.layers(); l++) {
      String p = "model.layers." + l + ".";
      t.add(new TensorSpec(p + "input_layernorm.weight", new long[] {s.hidden()}, true));
      t.add(new TensorSpec(p + "self_attn.q_proj.weight", new long[] {s.hidden(), s.hidden()}, false));
      t.add(new TensorSpec(p + "self_attn.k_proj.weight", new long[] {kv, s.hidden()}, false));
      t.add(new TensorSpec(p + "self_attn.v_proj.weight", new long[] {kv, s.hidden()}, false));
      t.add(new TensorSpec(p + "self_attn.o_proj.weight", new long[] {s.hidden(), s.hidden()}, false));
      t.add(new TensorSpec(p + "post_attention_layernorm.weight", new long[] {s.hidden()}, true));
      t.add(new TensorSpec(p + "mlp.gate_proj.weight", new long[] {s.intermediate(), s.hidden()}, false));
      t.add(new TensorSpec(p + "mlp.up_proj.weight", new long[] {s.intermediate(), s.hidden()}, false));
      t.add(new TensorSpec(p + "mlp.down_proj.weight", new long[] {s.hidden(), s.intermediate()}, false));
    }
    t.add(new TensorSpec("model.norm.weight", new long[] {s.hidden()}, true));
    if (!s.tiedEmbeddings()) {
      t.add(new TensorSpec("lm_head.weight", new long[] {s.vocab(), s.hidden()}, false));
    }
    return t;
  }

  private static void writeWeights(Path file, Shape shape) throws IOException {
    List<TensorSpec> specs = tensors(shape);
    Map<String, Object> header = new LinkedHashMap<>();
    header.put("__metadata__", Map.of("format", "pt"));
    long offset = 0;
    for (TensorSpec spec : specs) {
      long bytes = spec.elements() * 2;
      header.put(spec.name(), Map.of("dtype", "BF16", "shape", spec.shape(), "data_offsets", new long[] {offset, offset + bytes}));
      offset += bytes;
    }
    byte[] headerBytes = new ObjectMapper().writeValueAsBytes(header);
    int padded = (headerBytes.length + 7) / 8 * 8;
    ByteBuffer prefix = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
    prefix.putLong(padded).put(headerBytes);
    while (prefix.hasRemaining()) {
      prefix.put((byte) ' ');
    }
    prefix.flip();
    long state = 0x9E3779B97F4A7C15L;
    ByteBuffer chunk = ByteBuffer.allocateDirect(1 << 22).order(ByteOrder.LITTLE_ENDIAN);
    try (FileChannel out = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
      while (prefix.hasRemaining()) {
        out.write(prefix);
      }
      for (TensorSpec spec : specs) {
        for (long i = 0; i < spec.elements(); i++) {
          float value;
          if (spec.ones()) {
            value = 1f;
          } else {
            state ^= state << 13;
            state ^= state >>> 7;
            state ^= state << 17;
            value = ((state >>> 40) * 0x1.0p-24f * 2 - 1) * UNIFORM_BOUND;
          }
          chunk.putShort((short) (Float.floatToRawIntBits(value) >>> 16));
          if (!chunk.hasRemaining()) {
            flush(chunk, out);
          }
        }
      }
      flush(chunk, out);
    }
  }

  private static void flush(ByteBuffer chunk, FileChannel out) throws IOException {
    chunk.flip();
    while (chunk.hasRemaining()) {
      out.write(chunk);
    }
    chunk.clear();
  }
}
