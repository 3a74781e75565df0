package dev.beamllama.pipeline;

import dev.beamllama.model.Engines;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.config.GenerationConfig;
import dev.beamllama.model.sampling.SamplingParams;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * The one line a job prints before it starts: which model (the id as given, and the directory it
 * resolved to), which engine, and the sampling every record gets unless it overrides it, with where
 * each setting came from, so a run's output can be explained from its log.
 */
final class StartupLine {
  private StartupLine() {}

  static String of(JobConfig job) {
    ModelDirectory model = job.model();
    String where = model.huggingFaceId().isPresent() ? "Hugging Face cache snapshot " + model.path() : model.path().toString();
    return String.format(Locale.ROOT, "beam-llama: model %s (%s), engine %s, task %s, %s, stop at %s, seed %d%s",
        model.name(), where, engine(job.engine().kind()), job.task().label(), sampling(job.sampling()),
        job.stopTokens().isEmpty() ? "max_new_tokens only (the checkpoint names no eos_token_id)"
            : String.join(" or ", job.stopTokens()) + " (" + stopSource(model) + ")", job.sampling().seed(),
        notApplied(job.sampling(), model.generationConfig()));
  }

  private static String engine(Engines.Kind kind) {
    return kind == Engines.Kind.AUTO ? "auto (CUDA where a worker has a usable GPU, else CPU)" : kind.name().toLowerCase(Locale.ROOT);
  }

  /** The job's sampling: the model card's defaults, each changed by its flag. */
  static String sampling(SamplingParams s) {
    List<String> fromFlags = new ArrayList<>();
    StringBuilder line = new StringBuilder("sampling");
    setting(line, fromFlags, "temperature", s.temperature(), SamplingParams.DEFAULT_TEMPERATURE);
    setting(line, fromFlags, "top_k", s.topK(), SamplingParams.DEFAULT_TOP_K);
    setting(line, fromFlags, "top_p", s.topP(), SamplingParams.DEFAULT_TOP_P);
    setting(line, fromFlags, "repetition_penalty", s.repetitionPenalty(), SamplingParams.DEFAULT_REPETITION_PENALTY);
    setting(line, fromFlags, "max_new_tokens", s.maxNewTokens(), SamplingParams.DEFAULT_MAX_NEW_TOKENS);
    line.setLength(line.length() - 1);
    line.append(fromFlags.isEmpty() ? " (model card defaults)"
        : fromFlags.size() == 5 ? " (all from flags)" : " (" + String.join(", ", fromFlags) + " from flags, the rest model card defaults)");
    return line.toString();
  }

  /**
   * generation_config.json's sampling fields are never applied (the model card's settings are the
   * documented defaults): where one differs from a default the job runs with, the line says so
   * rather than leave a reader to wonder which one ran.
   */
  static String notApplied(SamplingParams s, GenerationConfig checkpoint) {
    List<String> ignored = new ArrayList<>();
    ignoredIfDefaultWins(ignored, "temperature", checkpoint.temperature(), s.temperature(), SamplingParams.DEFAULT_TEMPERATURE);
    ignoredIfDefaultWins(ignored, "top_k", checkpoint.topK(), s.topK(), SamplingParams.DEFAULT_TOP_K);
    ignoredIfDefaultWins(ignored, "top_p", checkpoint.topP(), s.topP(), SamplingParams.DEFAULT_TOP_P);
    ignoredIfDefaultWins(ignored, "repetition_penalty", checkpoint.repetitionPenalty(), s.repetitionPenalty(),
        SamplingParams.DEFAULT_REPETITION_PENALTY);
    return ignored.isEmpty() ? ""
        : "; " + GenerationConfig.FILE + "'s " + String.join(", ", ignored) + " not applied (the defaults are the model card's; "
            + "flags change them)";
  }

  private static void setting(StringBuilder line, List<String> fromFlags, String name, Number value, Number modelCard) {
    line.append(' ').append(name).append(' ').append(value).append(',');
    if (value.doubleValue() != modelCard.doubleValue()) {
      fromFlags.add(name);
    }
  }

  private static void ignoredIfDefaultWins(List<String> ignored, String name, Optional<? extends Number> checkpoint, Number used,
      Number modelCard) {
    if (used.doubleValue() == modelCard.doubleValue()) {
      checkpoint.filter(v -> v.doubleValue() != used.doubleValue()).ifPresent(v -> ignored.add(name + " " + v));
    }
  }

  private static String stopSource(ModelDirectory model) {
    return model.generationConfig().eosTokenIds().isEmpty() ? "config.json's eos_token_id" : GenerationConfig.FILE;
  }
}
