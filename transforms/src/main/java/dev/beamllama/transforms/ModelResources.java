package dev.beamllama.transforms;

import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.chat.ChatTemplate;
import dev.beamllama.model.chat.PromptEncoder;
import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A checkpoint's tokenizer, chat template and config, loaded once per JVM and shared by every DoFn
 * instance and thread that needs them (HF tokenizers and Jinjava rendering are thread-safe), and by
 * the launcher's checks where it runs in the same JVM (the DirectRunner).
 */
public final class ModelResources {
  private static final Map<String, ModelResources> LOADED = new ConcurrentHashMap<>();

  private final ModelDirectory directory;
  private final Tokenizer tokenizer;
  private final ChatTemplate chatTemplate;
  private final Map<PromptEncoder.SpecialTokens, PromptEncoder> encoders = new ConcurrentHashMap<>();

  private ModelResources(ModelDirectory directory) {
    this.directory = directory;
    this.tokenizer = directory.tokenizer();
    try {
      this.chatTemplate = directory.chatTemplateIfAny().orElse(null);
    } catch (RuntimeException e) {
      tokenizer.close();
      throw e;
    }
  }

  public static ModelResources of(String modelPath) {
    return LOADED.computeIfAbsent(Path.of(modelPath).toAbsolutePath().normalize().toString(),
        path -> new ModelResources(new ModelDirectory(Path.of(path))));
  }

  public ModelDirectory directory() {
    return directory;
  }

  public LlamaConfig config() {
    return directory.config();
  }

  public Tokenizer tokenizer() {
    return tokenizer;
  }

  /** Whether the checkpoint has a chat template: a base model's has none, and takes raw prompts only. */
  public boolean hasChatTemplate() {
    return chatTemplate != null;
  }

  /** The prompt encoder; without a chat template in the checkpoint it encodes raw prompts only (--task=complete). */
  public PromptEncoder promptEncoder(PromptEncoder.SpecialTokens mode) {
    return encoders.computeIfAbsent(mode,
        m -> chatTemplate == null ? PromptEncoder.withoutTemplate(tokenizer, m) : new PromptEncoder(chatTemplate, tokenizer, m));
  }
}
