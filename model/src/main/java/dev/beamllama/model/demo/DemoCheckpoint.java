package dev.beamllama.model.demo;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.beamllama.model.safetensors.DType;
import dev.beamllama.model.safetensors.SafetensorsWriter;
import dev.beamllama.model.sampling.SeededRandom;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * Writes the demo checkpoint: a small Llama 3 with random bf16 weights and the real Llama 3
 * tokenizer and chat template (vocabulary 128256), so the pipeline runs end to end on any machine.
 * Random weights make gibberish: the directory carries a marker file that tools report.
 *
 * <p>Weights come from a fixed seed through {@link SeededRandom}, so every machine writes the same
 * bytes and runs of the demo are reproducible.
 */
public final class DemoCheckpoint {
  /** Present in every demo checkpoint directory; tools warn when they see it. */
  public static final String MARKER = "beam-llama-demo.json";

  public static final int VOCAB = 128256;
  public static final int HIDDEN = 256;
  public static final int INTERMEDIATE = 768;
  public static final int LAYERS = 4;
  public static final int HEADS = 8;
  public static final int KV_HEADS = 2;
  public static final int MAX_POSITIONS = 4096;
  private static final long SEED = 20240501L;
  private static final float INIT_STD = 0.02f;

  private DemoCheckpoint() {}

  public static void main(String[] args) throws IOException {
    if (args.length != 2) {
      System.err.println("usage: make-demo-model OUTPUT_DIR TOKENIZER_DIR (holding tokenizer.json and tokenizer_config.json)");
      System.exit(2);
    }
    Path out = Path.of(args[0]);
    write(out, Path.of(args[1]));
    System.out.println(out.toAbsolutePath());
  }

  public static void write(Path dir, Path tokenizerDir) throws IOException {
    Files.createDirectories(dir);
    for (String file : new String[] {"tokenizer.json", "tokenizer_config.json"}) {
      Path source = tokenizerDir.resolve(file);
      if (!Files.isRegularFile(source)) {
        throw new IOException(source + " is missing: run scripts/fetch-tokenizer first");
      }
      Files.copy(source, dir.resolve(file), StandardCopyOption.REPLACE_EXISTING);
    }
    ObjectMapper json = new ObjectMapper();
    Files.writeString(dir.resolve("config.json"), json.writerWithDefaultPrettyPrinter().writeValueAsString(config(json)));
    Files.writeString(dir.resolve("generation_config.json"), """
        {
          "bos_token_id": 128000,
          "eos_token_id": [128001, 128009],
          "do_sample": true,
          "temperature": 0.9,
          "top_k": 40,
          "top_p": 0.9,
          "repetition_penalty": 1.1,
          "max_new_tokens": 1024
        }
        """);
    writeWeights(dir.resolve("model.safetensors.tmp"));
    Files.move(dir.resolve("model.safetensors.tmp"), dir.resolve("model.safetensors"), StandardCopyOption.REPLACE_EXISTING);
    Files.writeString(dir.resolve(MARKER), """
        {"note": "beam-llama demo checkpoint: Llama 3 architecture and tokenizer with RANDOM weights. Its output is gibberish; use it to run the pipeline, not to read the text."}
        """);
  }

  private static ObjectNode config(ObjectMapper json) {
    ObjectNode c = json.createObjectNode();
    c.putArray("architectures").add("LlamaForCausalLM");
    c.put("model_type", "llama");
    c.put("attention_bias", false);
    c.put("bos_token_id", 128000);
    c.put("eos_token_id", 128009);
    c.put("hidden_act", "silu");
    c.put("hidden_size", HIDDEN);
    c.put("intermediate_size", INTERMEDIATE);
    c.put("max_position_embeddings", MAX_POSITIONS);
    c.put("num_attention_heads", HEADS);
    c.put("num_hidden_layers", LAYERS);
    c.put("num_key_value_heads", KV_HEADS);
    c.put("rms_norm_eps", 1e-5);
    c.putNull("rope_scaling");
    c.put("rope_theta", 500000.0);
    c.put("tie_word_embeddings", true);
    c.put("torch_dtype", "bfloat16");
    c.put("vocab_size", VOCAB);
    return c;
  }

  private static void writeWeights(Path file) throws IOException {
    int headDim = HIDDEN / HEADS;
    Init init = new Init();
    SafetensorsWriter writer = new SafetensorsWriter();
    writer.add("model.embed_tokens.weight", DType.BF16, init.normal(VOCAB * HIDDEN), VOCAB, HIDDEN);
    for (int l = 0; l < LAYERS; l++) {
      String p = "model.layers." + l + ".";
      writer.add(p + "input_layernorm.weight", DType.BF16, ones(HIDDEN), HIDDEN);
      writer.add(p + "self_attn.q_proj.weight", DType.BF16, init.normal(HEADS * headDim * HIDDEN), HEADS * headDim, HIDDEN);
      writer.add(p + "self_attn.k_proj.weight", DType.BF16, init.normal(KV_HEADS * headDim * HIDDEN), KV_HEADS * headDim, HIDDEN);
      writer.add(p + "self_attn.v_proj.weight", DType.BF16, init.normal(KV_HEADS * headDim * HIDDEN), KV_HEADS * headDim, HIDDEN);
      writer.add(p + "self_attn.o_proj.weight", DType.BF16, init.normal(HIDDEN * HEADS * headDim), HIDDEN, HEADS * headDim);
      writer.add(p + "post_attention_layernorm.weight", DType.BF16, ones(HIDDEN), HIDDEN);
      writer.add(p + "mlp.gate_proj.weight", DType.BF16, init.normal(INTERMEDIATE * HIDDEN), INTERMEDIATE, HIDDEN);
      writer.add(p + "mlp.up_proj.weight", DType.BF16, init.normal(INTERMEDIATE * HIDDEN), INTERMEDIATE, HIDDEN);
      writer.add(p + "mlp.down_proj.weight", DType.BF16, init.normal(HIDDEN * INTERMEDIATE), HIDDEN, INTERMEDIATE);
    }
    writer.add("model.norm.weight", DType.BF16, ones(HIDDEN), HIDDEN);
    writer.write(file);
  }

  private static float[] ones(int n) {
    float[] v = new float[n];
    java.util.Arrays.fill(v, 1f);
    return v;
  }

  /** Normal(0, INIT_STD) draws by Box-Muller over SeededRandom, identical on every JVM. */
  private static final class Init {
    private long counter;

    float[] normal(int n) {
      float[] v = new float[n];
      for (int i = 0; i < n; i++) {
        double u1 = SeededRandom.uniform(SEED, counter++);
        double u2 = SeededRandom.uniform(SEED, counter++);
        v[i] = (float) (INIT_STD * StrictMath.sqrt(-2 * StrictMath.log(1 - u1)) * StrictMath.cos(2 * StrictMath.PI * u2));
      }
      return v;
    }
  }
}
