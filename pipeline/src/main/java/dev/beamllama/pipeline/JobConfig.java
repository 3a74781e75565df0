package dev.beamllama.pipeline;

import dev.beamllama.io.CompletionJournal;
import dev.beamllama.io.RecordFiles;
import dev.beamllama.io.RecordFormat;
import dev.beamllama.model.Engines;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.HuggingFaceCache;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.llama.LlamaWeights;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;
import dev.beamllama.model.chat.ChatTemplate;
import dev.beamllama.model.chat.PromptEncoder;
import dev.beamllama.model.config.EnumOption;
import dev.beamllama.model.sampling.SamplingParams;
import dev.beamllama.model.tokenizer.Tokenizer;
import dev.beamllama.transforms.EncodePrompt;
import dev.beamllama.transforms.EngineSpec;
import dev.beamllama.transforms.ModelResources;
import dev.beamllama.transforms.PromptBuilder;
import dev.beamllama.transforms.PromptTemplates;
import dev.beamllama.transforms.Task;
import dev.beamllama.transforms.Overlong;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.UUID;

/**
 * The options checked and resolved before the pipeline is built, so a wrong flag, a missing model
 * or an unknown task is a clear startup error rather than a failure deep inside the job.
 */
public record JobConfig(
    String input,
    RecordFormat inputFormat,
    long maxLineBytes,
    String outputPrefix,
    RecordFormat outputFormat,
    int numShards,
    String errorsPrefix,
    ModelDirectory model,
    List<String> stopTokens,
    Task task,
    EncodePrompt encodePrompt,
    SamplingParams sampling,
    EngineSpec engine,
    int maxInFlight,
    String resumeFrom,
    CompletionJournal.Spec journal,
    boolean keepJournal) {

  /**
   * The earlier output to resume from. The new run must write elsewhere: its shards, named like the
   * earlier ones, would replace them, and the two outputs together would no longer be the whole.
   */
  private static String resumeFrom(String given, String outputPrefix) {
    if (given == null || given.isBlank()) {
      return null;
    }
    Path localPrefix = localAbsolute(outputPrefix);
    // What this run writes: <prefix>-SSSSS-of-NNNNN, <prefix>-journal/, <prefix>-errors-*, <prefix>-report/.
    String own = localPrefix == null ? null : localPrefix + "-";
    String ownOutput = "--resumeFrom=" + given + " is this run's own --output: write the resumed run to another --output, or its "
        + "shards would replace the earlier ones";
    Path localGiven = localAbsolute(given);
    if (own != null && localGiven != null && localGiven.toString().startsWith(own)) {
      throw new IllegalArgumentException(ownOutput);
    }
    List<Path> files = RecordFiles.localMatches(given, "**");
    if (files != null && files.isEmpty()) {
      throw new IllegalArgumentException("--resumeFrom=" + given + " matches no file: there is nothing to resume from (run without it)");
    }
    if (files != null && own != null && files.stream().anyMatch(f -> f.toString().startsWith(own))) {
      throw new IllegalArgumentException(ownOutput + " (it holds files of this --output)");
    }
    return given;
  }

  /** A local location whose directory cannot be created or written fails the job at startup, not after its work. */
  private static void checkWritable(String option, String prefix) {
    Path local = localAbsolute(prefix);
    if (local == null) {
      return;
    }
    Path directory = local.getParent();
    Path existing = directory;
    while (existing != null && !Files.exists(existing)) {
      existing = existing.getParent();
    }
    if (existing == null || !Files.isDirectory(existing)) {
      throw new IllegalArgumentException(option + "=" + prefix + ": " + existing + " is not a directory, so " + directory + " cannot be made");
    }
    if (!Files.isWritable(existing)) {
      throw new IllegalArgumentException(option + "=" + prefix + ": cannot write in " + existing);
    }
  }

  public static JobConfig from(BeamLlamaOptions o) {
    return from(o, HuggingFaceCache.fromEnvironment());
  }

  /** With the Hugging Face cache a model id is looked up in (tests pass their own). */
  static JobConfig from(BeamLlamaOptions o, HuggingFaceCache huggingFaceCache) {
    RecordFormat inputFormat = EnumOption.parse(RecordFormat.class, "inputFormat", o.getInputFormat());
    RecordFormat outputFormat = EnumOption.parse(RecordFormat.class, "outputFormat", o.getOutputFormat());
    String prefix = o.getOutput();
    for (RecordFormat f : new RecordFormat[] {RecordFormat.JSONL, RecordFormat.PARQUET}) {
      if (prefix.toLowerCase(Locale.ROOT).endsWith(f.extension())) {
        prefix = prefix.substring(0, prefix.length() - f.extension().length());
        if (outputFormat == RecordFormat.AUTO) {
          outputFormat = f;
        }
      }
    }
    if (outputFormat == RecordFormat.AUTO) {
      outputFormat = RecordFormat.JSONL;
    }
    List<Path> inputs = RecordFiles.localMatches(o.getInput(), "*");
    if (inputs != null && inputs.isEmpty()) {
      throw new IllegalArgumentException("--input=" + o.getInput() + " matches no file");
    }
    Task task = EnumOption.parse(Task.class, "task", o.getTask());
    PromptTemplates templates = PromptTemplates.defaults();
    if (o.getSystemPrompt() != null && task == Task.COMPLETE) {
      throw new IllegalArgumentException("--systemPrompt does not apply to --task=complete, which sends each prompt as it is");
    }
    if (o.getSystemPrompt() != null) {
      templates = templates.withSystemPrompt(o.getSystemPrompt());
    }
    if (o.getPromptTemplate() != null) {
      templates = templates.withTemplate(task, readTemplate(o.getPromptTemplate()));
    }
    ModelDirectory model = ModelDirectory.open(o.getModel(), huggingFaceCache);
    model.config(); // a broken config.json is a startup error
    // So is a missing or mismatched tokenizer, or an unreadable tokenizer_config.json. Loaded once per
    // JVM: the DirectRunner's DoFns encode with these.
    ModelResources resources = ModelResources.of(model.path().toString());
    Tokenizer tokenizer = resources.tokenizer();
    List<String> stopTokens = Arrays.stream(model.stopTokenIds()).mapToObj(id -> tokenizer.decode(new int[] {id}, false)).toList();
    try (SafetensorsCheckpoint weights = model.openWeights()) {
      LlamaWeights.check(weights, model.config()); // and missing, truncated or misshapen weights
    }
    if (task != Task.COMPLETE && !resources.hasChatTemplate()) {
      throw new IllegalArgumentException(model.path() + " has no chat template (no chat_template in " + ChatTemplate.FILE
          + ": a base model): --task=" + task.label() + " needs one; --task=complete takes raw prompts");
    }
    SamplingParams sampling = new SamplingParams(o.getTemperature(), o.getTopK(), o.getTopP(), o.getRepetitionPenalty(),
        o.getMaxNewTokens(), o.getSeed(), false);
    EngineSpec engine = new EngineSpec(model.path().toString(), EnumOption.parse(Engines.Kind.class, "engine", o.getEngine()),
        EngineOptions.defaults()
            .withMaxNumSeqs(o.getMaxNumSeqs())
            .withMaxBatchTokens(o.getMaxBatchTokens())
            .withKvCacheBytes(o.getKvCacheBytes())
            .withThreads(o.getEngineThreads())
            .withGpuMemoryUtilization(o.getGpuMemoryUtilization())
            .withWeights(EnumOption.parse(EngineOptions.Weights.class, "weights", o.getWeights()))
            .withPrefixCaching(o.getPrefixCaching()));
    if (engine.kind() == Engines.Kind.CUDA && engine.options().weights() == EngineOptions.Weights.INT8) {
      throw new IllegalArgumentException("--weights=int8 is a CPU engine option (the CUDA engine reads the checkpoint's own weights): "
          + "use it with --engine=cpu or auto, or drop it for --engine=cuda");
    }
    engine.context(); // a --kvCacheBytes too small for one cache block is a startup error, not a worker's
    PromptEncoder.SpecialTokens specialTokens = EnumOption.parse(PromptEncoder.SpecialTokens.class, "specialTokens", o.getSpecialTokens());
    Overlong overlong = EnumOption.parse(Overlong.class, "overlong", o.getOverlong());
    EncodePrompt encodePrompt = EncodePrompt.of(engine, new PromptBuilder(task, templates))
        .withSpecialTokens(specialTokens)
        .withOverlong(overlong)
        .withSampling(sampling);
    if (o.getMaxLineBytes() < 1) {
      throw new IllegalArgumentException("--maxLineBytes must be positive, got " + o.getMaxLineBytes());
    }
    if (o.getMaxInFlight() < 1) {
      throw new IllegalArgumentException("--maxInFlight must be positive, got " + o.getMaxInFlight());
    }
    if (o.getNumShards() < 0) {
      throw new IllegalArgumentException("--numShards must be 0 (the runner's choice) or more, got " + o.getNumShards());
    }
    String resumeFrom = resumeFrom(o.getResumeFrom(), prefix);
    CompletionJournal.Spec journal = journal(o, prefix, model, task, sampling, engine, specialTokens, overlong);
    if (journal != null) {
      CompletionJournal.checkSameJob(journal.directory(), journal.job());
      if (resumeFrom != null) {
        CompletionJournal.checkSameJob(resumeFrom, journal.job());
      }
    }
    String errorsPrefix = o.getErrors() != null ? o.getErrors() : prefix + "-errors";
    if (outputFormat == RecordFormat.JSONL && sameLocation(errorsPrefix, prefix)) {
      throw new IllegalArgumentException("--errors=" + o.getErrors() + " names the completions' own files (--output=" + o.getOutput()
          + "): the dead letters and the completions would overwrite each other; give the dead letters another prefix");
    }
    checkWritable("--output", prefix);
    checkWritable("--errors", errorsPrefix);
    return new JobConfig(o.getInput(), inputFormat, o.getMaxLineBytes(), prefix, outputFormat, o.getNumShards(),
        errorsPrefix, model, stopTokens, task, encodePrompt, sampling, engine,
        o.getMaxInFlight(), resumeFrom, journal, o.getKeepJournal());
  }

  private static boolean sameLocation(String a, String b) {
    Path localA = localAbsolute(a);
    Path localB = localAbsolute(b);
    return localA != null && localB != null ? localA.equals(localB) : a.equals(b);
  }

  /** {@code location} as an absolute, normalized local path, or null for a location elsewhere (an object store). */
  static Path localAbsolute(String location) {
    String local = localPath(location);
    return local == null ? null : Path.of(local).toAbsolutePath().normalize();
  }

  /** {@code location} as a local path (a {@code file://} URL's path), or null for a location elsewhere (an object store). */
  static String localPath(String location) {
    if (location.startsWith("file://")) {
      return location.substring("file://".length());
    }
    return location.contains("://") ? null : location;
  }

  /**
   * The job's journal, next to its output; none with --journal=false, or for an output that is not
   * a local path (the journal appends and syncs a file, which object stores cannot). Its job
   * settings are everything that decides a record besides the record itself.
   */
  private static CompletionJournal.Spec journal(BeamLlamaOptions o, String prefix, ModelDirectory model, Task task, SamplingParams sampling,
      EngineSpec engine, PromptEncoder.SpecialTokens specialTokens, Overlong overlong) {
    String localPrefix = localPath(prefix);
    if (!o.getJournal() || localPrefix == null) {
      return null;
    }
    if (o.getJournalSyncSeconds() < 1 || o.getJournalSyncSamples() < 1) {
      throw new IllegalArgumentException("--journalSyncSeconds and --journalSyncSamples must be positive");
    }
    SortedMap<String, String> job = new TreeMap<>();
    job.put("model", model.name());
    job.put("task", task.label());
    job.put("temperature", String.valueOf(sampling.temperature()));
    job.put("top_k", String.valueOf(sampling.topK()));
    job.put("top_p", String.valueOf(sampling.topP()));
    job.put("repetition_penalty", String.valueOf(sampling.repetitionPenalty()));
    job.put("max_new_tokens", String.valueOf(sampling.maxNewTokens()));
    job.put("seed", String.valueOf(sampling.seed()));
    job.put("engine", EnumOption.label(engine.kind()));
    job.put("weights", EnumOption.label(engine.options().weights()));
    job.put("special_tokens", EnumOption.label(specialTokens));
    job.put("overlong", EnumOption.label(overlong));
    job.put("system_prompt", String.valueOf(o.getSystemPrompt()));
    // The template's text, not its file name: a file edited between two runs is another job.
    job.put("prompt_template", o.getPromptTemplate() == null ? "null" : sha256(readTemplate(o.getPromptTemplate())));
    String directory = CompletionJournal.directoryOf(localPrefix);
    return new CompletionJournal.Spec(directory, job, o.getJournalSyncSeconds() * 1000L, o.getJournalSyncSamples(),
        UUID.randomUUID().toString());
  }

  private static String sha256(String text) {
    try {
      return "sha256:" + HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8)));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private static String readTemplate(String file) {
    try {
      return Files.readString(Path.of(file));
    } catch (IOException e) {
      throw new IllegalArgumentException("--promptTemplate " + file + ": cannot read: " + e.getMessage());
    }
  }
}
