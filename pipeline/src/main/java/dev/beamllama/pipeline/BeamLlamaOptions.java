package dev.beamllama.pipeline;

import dev.beamllama.io.CompletionJournal;
import dev.beamllama.io.PromptIO;
import dev.beamllama.model.cuda.CudaModelRunner;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.sampling.SamplingParams;
import dev.beamllama.transforms.Generate;
import org.apache.beam.sdk.options.Default;
import org.apache.beam.sdk.options.Description;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.Validation;

/**
 * The job's command-line options (Beam {@code --name=value} style), with the runner's own. Each
 * default is the constant of the code that owns the setting (sampling: {@link SamplingParams}, the
 * model card's, so the job and {@code scripts/llama} agree; sizing: {@link EngineOptions}; reading:
 * {@link PromptIO}; in-flight samples: {@link Generate}), never a second copy of it. Enum options are
 * read by {@link dev.beamllama.model.config.EnumOption}.
 */
public interface BeamLlamaOptions extends PipelineOptions {
  @Description("Prompt records: a file, a glob or a directory of JSONL (.jsonl, .jsonl.gz) or Parquet (.parquet) files")
  @Validation.Required
  String getInput();

  void setInput(String value);

  @Description("Input format: auto (a .parquet name or Parquet content is Parquet, anything else JSONL), jsonl or parquet")
  @Default.String("auto")
  String getInputFormat();

  void setInputFormat(String value);

  @Description("Output prefix for completion shards, e.g. out/completions (.jsonl or .parquet on it picks the format)")
  @Validation.Required
  String getOutput();

  void setOutput(String value);

  @Description("Output format: auto (from --output's extension, else jsonl), jsonl or parquet")
  @Default.String("auto")
  String getOutputFormat();

  void setOutputFormat(String value);

  @Description("Prefix for dead-letter shards (JSONL); default <output prefix>-errors")
  String getErrors();

  void setErrors(String value);

  @Description("Checkpoint directory in Hugging Face layout (config.json, safetensors, tokenizer.json, tokenizer_config.json), "
      + "or a Hugging Face model id (org/name, org/name@revision) already in the local cache: $HF_HUB_CACHE, else $HF_HOME/hub, "
      + "else ~/.cache/huggingface/hub. An existing directory wins over an id.")
  @Validation.Required
  String getModel();

  void setModel(String value);

  @Description("chat (messages, or user + system), summarize (text), qa (context + question) or complete (prompt)")
  @Default.String("chat")
  String getTask();

  void setTask(String value);

  @Description("auto (CUDA when a GPU is usable, else CPU), cpu or cuda")
  @Default.String("auto")
  String getEngine();

  void setEngine(String value);

  @Description("System prompt for chat, summarize and qa (default: the model card's); empty for none")
  String getSystemPrompt();

  void setSystemPrompt(String value);

  @Description("File with the summarize or qa instruction template ({text}, or {context} and {question})")
  String getPromptTemplate();

  void setPromptTemplate(String value);

  @Description("Prompts that do not fit the engine's context (the model's positions or, when smaller, what the KV cache holds of one"
      + " sequence) with max_new_tokens: reject (dead letter) or truncate (cut the document's middle)")
  @Default.String("reject")
  String getOverlong();

  void setOverlong(String value);

  @Description("Special-token text inside records: plain (stays text, default) or parse (as Hugging Face)")
  @Default.String("plain")
  String getSpecialTokens();

  void setSpecialTokens(String value);

  @Description("Job seed: each sample's seed derives from it, the record id and the sample index")
  @Default.Long(0)
  long getSeed();

  void setSeed(long value);

  @Description("Most tokens generated per sample (records may override with max_new_tokens)")
  @Default.Integer(SamplingParams.DEFAULT_MAX_NEW_TOKENS)
  int getMaxNewTokens();

  void setMaxNewTokens(int value);

  @Description("Sampling temperature; 0 takes the most likely token")
  @Default.Double(SamplingParams.DEFAULT_TEMPERATURE)
  double getTemperature();

  void setTemperature(double value);

  @Description("Top-k filter; 0 switches it off")
  @Default.Integer(SamplingParams.DEFAULT_TOP_K)
  int getTopK();

  void setTopK(int value);

  @Description("Top-p (nucleus) filter; 1 switches it off")
  @Default.Double(SamplingParams.DEFAULT_TOP_P)
  double getTopP();

  void setTopP(double value);

  @Description("Repetition penalty over prompt and generated tokens; 1 switches it off")
  @Default.Double(SamplingParams.DEFAULT_REPETITION_PENALTY)
  double getRepetitionPenalty();

  void setRepetitionPenalty(double value);

  @Description("Sequences the engine runs at once; 0: the engine's default (CPU: " + EngineOptions.CPU_MAX_NUM_SEQS + "; CUDA: "
      + EngineOptions.CUDA_MAX_NUM_SEQS + ", or as many as the KV cache holds of " + CudaModelRunner.TYPICAL_SEQUENCE_TOKENS
      + " tokens each where that is fewer), "
      + "which the engine's load line states")
  @Default.Integer(0)
  int getMaxNumSeqs();

  void setMaxNumSeqs(int value);

  @Description("Tokens the engine computes per step (prompt chunks and decode tokens); 0: the engine's default (CPU: "
      + EngineOptions.CPU_MAX_BATCH_TOKENS + "; CUDA: " + EngineOptions.CUDA_MAX_BATCH_TOKENS + ", halved while a step's activations "
      + "would take more than a quarter of the GPU memory the weights leave)")
  @Default.Integer(0)
  int getMaxBatchTokens();

  void setMaxBatchTokens(int value);

  @Description("Completions of an earlier run of this job (a file, glob or directory, Beam's temporary files of a died run included): "
      + "samples already written there are not generated again, so the two outputs together are the full output")
  String getResumeFrom();

  void setResumeFrom(String value);

  @Description("Append each finished sample to <output prefix>-journal/ as it finishes (synced every --journalSyncSeconds or "
      + "--journalSyncSamples), so a job that dies loses only the samples in flight: --resumeFrom reads the journal, and a retried "
      + "task takes its samples from it; the output is written from it, so finished completions do not wait in memory for the write "
      + "(without it the DirectRunner holds them all); removed when the job succeeds. Needs a local (or mounted) output path, on "
      + "storage every worker can read")
  @Default.Boolean(true)
  boolean getJournal();

  void setJournal(boolean value);

  @Description("Longest time a journaled sample waits before it is synced to disk (a killed JVM loses none: each is handed to the "
      + "operating system at once; a machine that goes down loses those not synced)")
  @Default.Integer(CompletionJournal.DEFAULT_SYNC_SECONDS)
  int getJournalSyncSeconds();

  void setJournalSyncSeconds(int value);

  @Description("Most journaled samples not yet synced to disk")
  @Default.Integer(CompletionJournal.DEFAULT_SYNC_SAMPLES)
  int getJournalSyncSamples();

  void setJournalSyncSamples(int value);

  @Description("Keep <output prefix>-journal/ after the job succeeds (by default it is removed: the output holds every sample)")
  @Default.Boolean(false)
  boolean getKeepJournal();

  void setKeepJournal(boolean value);

  @Description("Prefix caching: a prompt's blocks of tokens already in the KV cache (another sample of the same record, a shared"
      + " system prompt) are taken, not computed again; the records are the same either way")
  @Default.Boolean(true)
  boolean getPrefixCaching();

  void setPrefixCaching(boolean value);

  @Description("Fraction of the GPU's memory the CUDA engine may use; the KV cache gets what the weights leave")
  @Default.Double(EngineOptions.DEFAULT_GPU_MEMORY_UTILIZATION)
  double getGpuMemoryUtilization();

  void setGpuMemoryUtilization(double value);

  @Description("Bytes of KV cache: 0 = the engine's choice (CPU: 2 GiB; CUDA: what --gpuMemoryUtilization leaves after the weights); "
      + "otherwise the CPU engine's cache and the CUDA engine's upper bound. The context prompts are checked against is planned from it:"
      + " 0 plans with 2 GiB for cpu and auto, the model's positions for cuda (a GPU whose cache holds less fails at load)")
  @Default.Long(0)
  long getKvCacheBytes();

  void setKvCacheBytes(long value);

  @Description("CPU engine weights: checkpoint (read as stored: transformers' numbers) or int8 (quantized at load with a"
      + " scale per row: about half the bytes per token, 1.5-2x the batch-1 speed, with a small error; docs/perf.md)")
  @Default.String("checkpoint")
  String getWeights();

  void setWeights(String value);

  @Description("CPU engine threads; 0 = all cores")
  @Default.Integer(0)
  int getEngineThreads();

  void setEngineThreads(int value);

  @Description("Longest JSONL line accepted, in bytes; longer lines become dead letters")
  @Default.Long(PromptIO.DEFAULT_MAX_LINE_BYTES)
  long getMaxLineBytes();

  void setMaxLineBytes(long value);

  @Description("Samples one worker thread keeps in flight before waiting for the oldest (bounds memory per bundle)")
  @Default.Integer(Generate.DEFAULT_MAX_IN_FLIGHT)
  int getMaxInFlight();

  void setMaxInFlight(int value);

  @Description("DirectRunner on Linux: the nice value its worker threads run at (0 leaves them as they are), so that its"
      + " polling loop yields the cores to the engine's threads")
  @Default.Integer(RunnerThreadPriority.DEFAULT_NICE)
  int getRunnerThreadNice();

  void setRunnerThreadNice(int value);

  @Description("Output shards; 0 lets the runner choose")
  @Default.Integer(0)
  int getNumShards();

  void setNumShards(int value);

  @Description("Write <output prefix>-report/ (summary.json, and report.html with plots) when the job succeeds; false for none")
  @Default.Boolean(true)
  boolean getReport();

  void setReport(boolean value);
}
