package dev.beamllama.model.config;

import java.nio.file.Path;
import java.util.List;

/** The architecture of a Llama checkpoint, read from its {@code config.json}. */
public record LlamaConfig(
    int vocabSize,
    int hiddenSize,
    int intermediateSize,
    int numLayers,
    int numHeads,
    int numKvHeads,
    int headDim,
    float rmsNormEps,
    int maxPositionEmbeddings,
    boolean tieWordEmbeddings,
    RopeConfig rope,
    String dtype,
    List<Integer> eosTokenIds) {

  public static final String FILE = "config.json";

  public int queryDim() {
    return numHeads * headDim;
  }

  public int kvDim() {
    return numKvHeads * headDim;
  }

  public static LlamaConfig read(Path file) {
    Json json = Json.read(file);
    String modelType = json.optionalString("model_type").orElse("llama");
    if (!modelType.equals("llama")) {
      throw json.error("model_type \"" + modelType + "\" is not supported: this engine runs Llama (model_type \"llama\") checkpoints");
    }
    String act = json.optionalString("hidden_act").orElse("silu");
    if (!act.equals("silu")) {
      throw json.error("hidden_act \"" + act + "\" is not supported (Llama uses silu)");
    }
    if (json.optionalBoolean("attention_bias").orElse(false) || json.optionalBoolean("mlp_bias").orElse(false)) {
      throw json.error("attention_bias / mlp_bias are not supported (Llama 3 has none)");
    }
    int hidden = json.requiredInt("hidden_size");
    int heads = json.requiredInt("num_attention_heads");
    int kvHeads = json.optionalInt("num_key_value_heads").orElse(heads);
    int headDim = json.optionalInt("head_dim").orElse(heads == 0 ? 0 : hidden / heads);
    if (hidden <= 0 || heads <= 0 || kvHeads <= 0 || headDim <= 0 || heads % kvHeads != 0 || headDim % 2 != 0) {
      throw json.error("inconsistent attention shape: hidden_size " + hidden + ", num_attention_heads " + heads
          + ", num_key_value_heads " + kvHeads + ", head_dim " + headDim);
    }
    LlamaConfig config = new LlamaConfig(
        json.requiredInt("vocab_size"),
        hidden,
        json.requiredInt("intermediate_size"),
        json.requiredInt("num_hidden_layers"),
        heads,
        kvHeads,
        headDim,
        json.optionalDouble("rms_norm_eps").orElse(1e-6).floatValue(),
        json.optionalInt("max_position_embeddings").orElse(2048),
        json.optionalBoolean("tie_word_embeddings").orElse(false),
        RopeConfig.parse(json),
        json.optionalString("dtype").or(() -> json.optionalString("torch_dtype")).orElse("float32"),
        List.copyOf(json.intOrIntList("eos_token_id")));
    if (config.vocabSize <= 0 || config.intermediateSize <= 0 || config.numLayers <= 0 || config.maxPositionEmbeddings <= 0) {
      throw json.error("vocab_size, intermediate_size, num_hidden_layers and max_position_embeddings must be positive");
    }
    return config;
  }
}
