package dev.beamllama.bench.llamacpp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;
import dev.beamllama.model.safetensors.Tensor;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A Llama checkpoint directory (Hugging Face layout) written as a GGUF v3 file that llama.cpp loads,
 * so that both engines of a benchmark run the same weights: bf16 as stored, or Q8_0 (blocks of 32
 * with an f16 scale, llama.cpp's 8-bit format, quantized from the stored values as its converter
 * does). Norm weights are f32, as llama.cpp's converter writes them. The query and key rows are
 * permuted back to the interleaved rotary layout llama.cpp expects (its converter's {@code permute}:
 * Hugging Face checkpoints rotate halves of each head). The Llama 3 tokenizer goes into the metadata.
 *
 * <p>Benchmark code: the engine never reads GGUF.
 *
 * <p>{@code GgufWriter MODEL_DIR OUTPUT.gguf bf16|q8_0}
 */
public final class GgufWriter {
  /** GGUF's tensor types (ggml_type) and llama.cpp's file types (llama_ftype) for the two formats. */
  public enum Format {
    BF16(GGML_BF16, 32),
    Q8_0(GGML_Q8_0, 7);

    final int ggmlType;
    final int fileType;

    Format(int ggmlType, int fileType) {
      this.ggmlType = ggmlType;
      this.fileType = fileType;
    }
  }

  static final int GGML_F32 = 0;
  static final int GGML_Q8_0 = 8;
  static final int GGML_BF16 = 30;
  static final int Q8_BLOCK = 32;
  static final int Q8_BLOCK_BYTES = 2 + Q8_BLOCK;
  private static final int ALIGNMENT = 32;
  private static final int TOKEN_NORMAL = 1;
  private static final int TOKEN_CONTROL = 3;
  private static final int TOKEN_USER_DEFINED = 4;

  private GgufWriter() {}

  public static void main(String[] args) throws IOException {
    if (args.length != 3) {
      System.err.println("usage: GgufWriter MODEL_DIR OUTPUT.gguf bf16|q8_0");
      System.exit(2);
    }
    Format format = Format.valueOf(args[2].toUpperCase(java.util.Locale.ROOT));
    write(Path.of(args[0]), Path.of(args[1]), format);
    System.out.println(Path.of(args[1]).toAbsolutePath());
  }

  /** One tensor of the file: its GGUF name and dims (innermost first), where its values come from, how it is stored. */
  private record Entry(String name, long[] dims, String source, int type, Permute permute) {
    long bytes() {
      long n = 1;
      for (long d : dims) {
        n *= d;
      }
      return switch (type) {
        case GGML_F32 -> n * 4;
        case GGML_BF16 -> n * 2;
        case GGML_Q8_0 -> n / Q8_BLOCK * Q8_BLOCK_BYTES;
        default -> throw new IllegalStateException("type " + type);
      };
    }
  }

  /** The rotary permutation of a query or key projection: {@code heads} heads of {@code headDim} rows. */
  record Permute(int heads, int headDim) {
    /** The checkpoint row that GGUF row {@code row} holds. */
    int sourceRow(int row) {
      int head = row / headDim;
      int within = row % headDim;
      int half = headDim / 2;
      return head * headDim + (within % 2) * half + within / 2;
    }
  }

  /** Writes {@code model} to {@code output} (through a temporary file, so a stopped run leaves no partial file). */
  public static void write(Path model, Path output, Format format) throws IOException {
    ModelDirectory dir = new ModelDirectory(model);
    LlamaConfig c = dir.config();
    if (c.rope().type() != dev.beamllama.model.config.RopeConfig.Type.DEFAULT) {
      throw new IllegalArgumentException(model + ": " + c.rope().type() + " rope scaling would need llama.cpp's rope_freqs"
          + " tensor or scaling keys, which this writer does not produce");
    }
    Tokenizer tokenizer = Tokenizer.read(model.resolve("tokenizer.json"), c.vocabSize());
    List<Entry> entries = entries(c, format);
    Path tmp = output.resolveSibling(output.getFileName() + ".tmp");
    try (SafetensorsCheckpoint weights = SafetensorsCheckpoint.open(model);
        OutputStream out = new BufferedOutputStream(Files.newOutputStream(tmp), 1 << 20)) {
      Gguf g = new Gguf(out);
      g.u32(0x46554747).u32(3).u64(entries.size());
      List<Runnable> metadata = metadata(g, c, dir.name(), format, tokenizer);
      g.u64(metadata.size());
      metadata.forEach(Runnable::run);
      long offset = 0;
      for (Entry e : entries) {
        g.string(e.name()).u32(e.dims().length);
        for (long d : e.dims()) {
          g.u64(d);
        }
        g.u32(e.type()).u64(offset);
        offset = align(offset + e.bytes());
      }
      g.pad();
      for (Entry e : entries) {
        Tensor t = weights.tensor(e.source());
        long start = g.written;
        writeData(g, t, e);
        if (g.written - start != e.bytes()) {
          throw new IllegalStateException(e.name() + ": wrote " + (g.written - start) + " bytes, expected " + e.bytes());
        }
        g.pad();
      }
    }
    Files.move(tmp, output, StandardCopyOption.REPLACE_EXISTING);
  }

  private static List<Entry> entries(LlamaConfig c, Format format) {
    int weight = format.ggmlType;
    List<Entry> t = new ArrayList<>();
    long hidden = c.hiddenSize();
    t.add(new Entry("token_embd.weight", new long[] {hidden, c.vocabSize()}, "model.embed_tokens.weight", weight, null));
    for (int l = 0; l < c.numLayers(); l++) {
      String src = "model.layers." + l + ".";
      String dst = "blk." + l + ".";
      t.add(new Entry(dst + "attn_norm.weight", new long[] {hidden}, src + "input_layernorm.weight", GGML_F32, null));
      t.add(new Entry(dst + "attn_q.weight", new long[] {hidden, c.queryDim()}, src + "self_attn.q_proj.weight", weight,
          new Permute(c.numHeads(), c.headDim())));
      t.add(new Entry(dst + "attn_k.weight", new long[] {hidden, c.kvDim()}, src + "self_attn.k_proj.weight", weight,
          new Permute(c.numKvHeads(), c.headDim())));
      t.add(new Entry(dst + "attn_v.weight", new long[] {hidden, c.kvDim()}, src + "self_attn.v_proj.weight", weight, null));
      t.add(new Entry(dst + "attn_output.weight", new long[] {c.queryDim(), hidden}, src + "self_attn.o_proj.weight", weight, null));
      t.add(new Entry(dst + "ffn_norm.weight", new long[] {hidden}, src + "post_attention_layernorm.weight", GGML_F32, null));
      t.add(new Entry(dst + "ffn_gate.weight", new long[] {hidden, c.intermediateSize()}, src + "mlp.gate_proj.weight", weight, null));
      t.add(new Entry(dst + "ffn_up.weight", new long[] {hidden, c.intermediateSize()}, src + "mlp.up_proj.weight", weight, null));
      t.add(new Entry(dst + "ffn_down.weight", new long[] {c.intermediateSize(), hidden}, src + "mlp.down_proj.weight", weight, null));
    }
    t.add(new Entry("output_norm.weight", new long[] {hidden}, "model.norm.weight", GGML_F32, null));
    if (!c.tieWordEmbeddings()) {
      t.add(new Entry("output.weight", new long[] {hidden, c.vocabSize()}, "lm_head.weight", weight, null));
    }
    if (format == Format.Q8_0) {
      for (Entry e : t) {
        if (e.type() == weight && e.dims()[0] % Q8_BLOCK != 0) {
          throw new IllegalArgumentException(e.name() + ": rows of " + e.dims()[0] + " values do not split into Q8_0 blocks of " + Q8_BLOCK);
        }
      }
    }
    return t;
  }

  private static List<Runnable> metadata(Gguf g, LlamaConfig c, String name, Format format, Tokenizer tok) {
    List<Runnable> kv = new ArrayList<>();
    kv.add(() -> g.key("general.architecture").stringValue("llama"));
    kv.add(() -> g.key("general.name").stringValue(name));
    kv.add(() -> g.key("general.file_type").u32Value(format.fileType));
    kv.add(() -> g.key("general.alignment").u32Value(ALIGNMENT));
    kv.add(() -> g.key("llama.vocab_size").u32Value(c.vocabSize()));
    kv.add(() -> g.key("llama.context_length").u32Value(c.maxPositionEmbeddings()));
    kv.add(() -> g.key("llama.embedding_length").u32Value(c.hiddenSize()));
    kv.add(() -> g.key("llama.block_count").u32Value(c.numLayers()));
    kv.add(() -> g.key("llama.feed_forward_length").u32Value(c.intermediateSize()));
    kv.add(() -> g.key("llama.attention.head_count").u32Value(c.numHeads()));
    kv.add(() -> g.key("llama.attention.head_count_kv").u32Value(c.numKvHeads()));
    kv.add(() -> g.key("llama.attention.key_length").u32Value(c.headDim()));
    kv.add(() -> g.key("llama.attention.value_length").u32Value(c.headDim()));
    kv.add(() -> g.key("llama.rope.dimension_count").u32Value(c.headDim()));
    kv.add(() -> g.key("llama.rope.freq_base").f32Value((float) c.rope().theta()));
    kv.add(() -> g.key("llama.attention.layer_norm_rms_epsilon").f32Value(c.rmsNormEps()));
    kv.add(() -> g.key("tokenizer.ggml.model").stringValue("gpt2"));
    kv.add(() -> g.key("tokenizer.ggml.pre").stringValue("llama-bpe"));
    kv.add(() -> g.key("tokenizer.ggml.tokens").stringArray(tok.tokens()));
    kv.add(() -> g.key("tokenizer.ggml.token_type").i32Array(tok.types()));
    kv.add(() -> g.key("tokenizer.ggml.merges").stringArray(tok.merges()));
    kv.add(() -> g.key("tokenizer.ggml.bos_token_id").u32Value(tok.id("<|begin_of_text|>")));
    kv.add(() -> g.key("tokenizer.ggml.eos_token_id").u32Value(c.eosTokenIds().getFirst()));
    return kv;
  }

  private static void writeData(Gguf g, Tensor t, Entry e) {
    long[] dims = e.dims();
    int columns = Math.toIntExact(dims[0]);
    int rows = Math.toIntExact(dims.length == 1 ? 1 : dims[1]);
    if (t.elementCount() != (long) columns * rows) {
      throw new IllegalArgumentException(t.name() + ": " + t.elementCount() + " values, expected " + columns + " x " + rows);
    }
    float[] row = new float[columns];
    byte[] bytes = new byte[columns * 4];
    ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    for (int r = 0; r < rows; r++) {
      int source = e.permute() == null ? r : e.permute().sourceRow(r);
      for (int i = 0; i < columns; i++) {
        row[i] = t.get((long) source * columns + i);
      }
      buf.clear();
      switch (e.type()) {
        case GGML_F32 -> {
          for (float v : row) {
            buf.putFloat(v);
          }
        }
        case GGML_BF16 -> {
          for (float v : row) {
            buf.putShort(dev.beamllama.model.safetensors.DType.floatToBf16(v));
          }
        }
        default -> quantizeQ8(row, buf);
      }
      g.bytes(bytes, buf.position());
    }
  }

  /**
   * One row as Q8_0 blocks, as ggml's reference quantizer does: scale d = max|x| / 127 (stored as
   * f16), values round(x / d).
   */
  static void quantizeQ8(float[] row, ByteBuffer out) {
    for (int b = 0; b < row.length; b += Q8_BLOCK) {
      float amax = 0;
      for (int i = 0; i < Q8_BLOCK; i++) {
        amax = Math.max(amax, Math.abs(row[b + i]));
      }
      float d = amax / 127f;
      float id = d != 0 ? 1f / d : 0f;
      out.putShort(Float.floatToFloat16(d));
      for (int i = 0; i < Q8_BLOCK; i++) {
        out.put((byte) Math.round(row[b + i] * id));
      }
    }
  }

  private static long align(long offset) {
    return (offset + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
  }

  /** The Llama 3 tokenizer as GGUF lists it: every id's text and type, and the BPE merges. */
  record Tokenizer(List<String> tokens, int[] types, List<String> merges, Map<String, Integer> ids) {
    int id(String token) {
      Integer id = ids.get(token);
      if (id == null) {
        throw new IllegalArgumentException("the tokenizer has no " + token);
      }
      return id;
    }

    static Tokenizer read(Path file, int vocabSize) throws IOException {
      JsonNode json = new ObjectMapper().readTree(file.toFile());
      JsonNode model = json.get("model");
      if (model == null || !"BPE".equals(model.path("type").asText())) {
        throw new IllegalArgumentException(file + ": not a BPE tokenizer");
      }
      String[] text = new String[vocabSize];
      int[] types = new int[vocabSize];
      Map<String, Integer> ids = new HashMap<>();
      model.get("vocab").fields().forEachRemaining(e -> {
        text[e.getValue().asInt()] = e.getKey();
        types[e.getValue().asInt()] = TOKEN_NORMAL;
        ids.put(e.getKey(), e.getValue().asInt());
      });
      for (JsonNode added : json.path("added_tokens")) {
        int id = added.get("id").asInt();
        text[id] = added.get("content").asText();
        types[id] = added.path("special").asBoolean() ? TOKEN_CONTROL : TOKEN_USER_DEFINED;
        ids.put(text[id], id);
      }
      List<String> tokens = new ArrayList<>(vocabSize);
      for (int i = 0; i < vocabSize; i++) {
        if (text[i] == null) {
          throw new IllegalArgumentException(file + ": no token for id " + i + " of the model's " + vocabSize);
        }
        tokens.add(text[i]);
      }
      List<String> merges = new ArrayList<>();
      for (JsonNode m : model.path("merges")) {
        merges.add(m.isArray() ? m.get(0).asText() + " " + m.get(1).asText() : m.asText());
      }
      return new Tokenizer(tokens, types, merges, ids);
    }
  }

  /** GGUF's little-endian primitives, counting the bytes written for alignment. */
  private static final class Gguf {
    private static final int TYPE_UINT32 = 4;
    private static final int TYPE_INT32 = 5;
    private static final int TYPE_FLOAT32 = 6;
    private static final int TYPE_STRING = 8;
    private static final int TYPE_ARRAY = 9;

    private final OutputStream out;
    private final ByteBuffer scratch = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
    long written;

    Gguf(OutputStream out) {
      this.out = out;
    }

    Gguf u32(int v) {
      scratch.clear();
      scratch.putInt(v);
      return bytes(scratch.array(), 4);
    }

    Gguf u64(long v) {
      scratch.clear();
      scratch.putLong(v);
      return bytes(scratch.array(), 8);
    }

    Gguf string(String s) {
      byte[] b = s.getBytes(StandardCharsets.UTF_8);
      u64(b.length);
      return bytes(b, b.length);
    }

    /** A metadata key: its value follows, typed. */
    Gguf key(String key) {
      return string(key);
    }

    void u32Value(int v) {
      u32(TYPE_UINT32).u32(v);
    }

    void f32Value(float v) {
      u32(TYPE_FLOAT32).u32(Float.floatToRawIntBits(v));
    }

    void stringValue(String v) {
      u32(TYPE_STRING).string(v);
    }

    void stringArray(List<String> values) {
      u32(TYPE_ARRAY).u32(TYPE_STRING).u64(values.size());
      values.forEach(this::string);
    }

    void i32Array(int[] values) {
      u32(TYPE_ARRAY).u32(TYPE_INT32).u64(values.length);
      for (int v : values) {
        u32(v);
      }
    }

    Gguf bytes(byte[] b, int length) {
      try {
        out.write(b, 0, length);
      } catch (IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
      written += length;
      return this;
    }

    void pad() {
      while (written % ALIGNMENT != 0) {
        bytes(new byte[1], 1);
      }
    }
  }
}
