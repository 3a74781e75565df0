package dev.beamllama.model;

import dev.beamllama.model.chat.ChatTemplate;
import dev.beamllama.model.config.GenerationConfig;
import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;
import dev.beamllama.model.tokenizer.Tokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Optional;
import java.util.Set;

/**
 * A Hugging Face checkpoint directory: {@code config.json}, {@code generation_config.json},
 * safetensors weights, {@code tokenizer.json} and {@code tokenizer_config.json}. Each part is read
 * when asked for, so tools that need only the tokenizer never map the weights.
 *
 * <p>{@link #open(String)} is how a user's {@code --model} becomes one: a directory, or a Hub id
 * found in the local Hugging Face cache ({@link HuggingFaceCache}).
 */
public final class ModelDirectory {
  private final Path path;
  private LlamaConfig config;
  private GenerationConfig generationConfig;

  public ModelDirectory(Path path) {
    this.path = path.toAbsolutePath().normalize();
    if (!Files.isDirectory(this.path)) {
      throw new CheckpointException(this.path + ": not a checkpoint directory (it does not exist or is not a directory)");
    }
  }

  /**
   * The checkpoint {@code model} names: an existing path always (a local directory wins over a Hub
   * id of the same spelling), else a Hub id ({@code org/name[@revision]}) resolved in {@code cache}.
   */
  public static ModelDirectory open(String model, HuggingFaceCache cache) {
    Path local = Path.of(model);
    if (Files.exists(local) || !HuggingFaceCache.isModelId(model)) {
      return new ModelDirectory(local);
    }
    return new ModelDirectory(cache.resolve(model));
  }

  /** {@link #open(String, HuggingFaceCache)} with the cache this process's environment names. */
  public static ModelDirectory open(String model) {
    return open(model, HuggingFaceCache.fromEnvironment());
  }

  public Path path() {
    return path;
  }

  /** The Hub id when this is a snapshot in a Hugging Face cache ({@code models--org--name/snapshots/<commit>}). */
  public Optional<String> huggingFaceId() {
    return HuggingFaceCache.idOf(path);
  }

  /**
   * The model name in outputs: the Hub id for a cached snapshot (its directory is a commit hash,
   * and every worker derives the same name from the path alone), else the directory's name.
   */
  public String name() {
    return huggingFaceId().orElse(path.getFileName().toString());
  }

  /** True for the random-weight demo checkpoint ({@code scripts/make-demo-model}): its text is gibberish. */
  public boolean isDemo() {
    return Files.exists(path.resolve(dev.beamllama.model.demo.DemoCheckpoint.MARKER));
  }

  public synchronized LlamaConfig config() {
    if (config == null) {
      config = LlamaConfig.read(path.resolve(LlamaConfig.FILE));
    }
    return config;
  }

  public synchronized GenerationConfig generationConfig() {
    if (generationConfig == null) {
      generationConfig = GenerationConfig.readIfPresent(path.resolve(GenerationConfig.FILE));
    }
    return generationConfig;
  }

  /**
   * Tokens that end generation: {@code generation_config.json}'s {@code eos_token_id} (one id or a
   * list, e.g. 128001 and 128009 for Llama 3 Instruct), else {@code config.json}'s.
   */
  public int[] stopTokenIds() {
    Set<Integer> ids = new LinkedHashSet<>(generationConfig().eosTokenIds());
    if (ids.isEmpty()) {
      ids.addAll(config().eosTokenIds());
    }
    return ids.stream().mapToInt(Integer::intValue).toArray();
  }

  /** Loads the tokenizer and checks it fits the model's vocabulary. The caller closes it. */
  public Tokenizer tokenizer() {
    Path file = path.resolve(Tokenizer.FILE);
    if (!Files.isRegularFile(file)) {
      throw new CheckpointException(file + ": missing (the checkpoint has no Hugging Face tokenizer)");
    }
    Tokenizer tokenizer = Tokenizer.load(file);
    if (Files.isRegularFile(path.resolve(LlamaConfig.FILE))) {
      try {
        tokenizer.checkFits(config().vocabSize());
      } catch (RuntimeException e) {
        tokenizer.close();
        throw e;
      }
    }
    return tokenizer;
  }

  public ChatTemplate chatTemplate() {
    Path file = path.resolve(ChatTemplate.FILE);
    if (!Files.isRegularFile(file)) {
      throw new CheckpointException(file + ": missing (the checkpoint has no chat template)");
    }
    return ChatTemplate.read(file);
  }

  /**
   * The chat template, or empty where the checkpoint has none: no {@code tokenizer_config.json}, or
   * one without {@code chat_template} (a base model, which takes raw prompts only).
   */
  public Optional<ChatTemplate> chatTemplateIfAny() {
    Path file = path.resolve(ChatTemplate.FILE);
    return Files.isRegularFile(file) ? ChatTemplate.readIfAny(file) : Optional.empty();
  }

  /** Memory-maps the weights; close the result to unmap. */
  public SafetensorsCheckpoint openWeights() {
    return SafetensorsCheckpoint.open(path);
  }
}
