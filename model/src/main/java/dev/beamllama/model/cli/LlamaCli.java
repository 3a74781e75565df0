package dev.beamllama.model.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.beamllama.model.CheckpointException;
import dev.beamllama.model.Engines;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.chat.ChatMessage;
import dev.beamllama.model.chat.ChatTemplate;
import dev.beamllama.model.chat.PromptEncoder;
import dev.beamllama.model.config.EnumOption;
import dev.beamllama.model.cuda.CudaException;
import dev.beamllama.model.cuda.CudaUnavailableException;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.GenerationResult;
import dev.beamllama.model.engine.InvalidRequestException;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.sampling.SamplingParams;
import dev.beamllama.model.tokenizer.StreamingDecoder;
import dev.beamllama.model.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * {@code scripts/llama}: the quick way to try a checkpoint, as the model card's snippet does.
 * Subcommands tokenize, detokenize, chat-template, generate and logits; {@code --json} everywhere.
 */
public final class LlamaCli {
  private static final ObjectMapper JSON = new ObjectMapper();

  private static final String USAGE = """
      usage: llama COMMAND --model (DIR | ORG/NAME[@REVISION]) [options]
        tokenize      --text T [--no-special-tokens] [--json]
        detokenize    --ids 1,2,3 [--skip-special-tokens] [--json]
        chat-template --messages FILE.json [--add-generation-prompt] [--parse-special-tokens] [--json]
        generate      (--prompt T | --chat T [--system S] | --prompt-ids 1,2,3) [--greedy] [--seed N]
                      [--max-new-tokens N] [--temperature X] [--top-k K] [--top-p P]
                      [--repetition-penalty R] [--parse-special-tokens] [--engine E] [--threads N] [--weights W] [--json]
        logits        --prompt-ids 1,2,3 [--engine E] [--threads N] [--weights W] [--json]
      Sampling defaults are the Waktaverse-Llama-3-KO-8B-Instruct model card's: temperature 0.9,
      top-k 40, top-p 0.9, repetition penalty 1.1, max 1024 new tokens. --greedy takes the argmax
      (Hugging Face do_sample=False) with no repetition penalty unless --repetition-penalty is given.
      --chat's default system prompt is the model card's; --system "" sends none.
      Special-token text in --prompt and --chat stays text (as the job's --specialTokens=plain);
      --parse-special-tokens reads it as special tokens, as Hugging Face does.
      --engine auto|cpu|cuda: auto (the default) takes the GPU when one is usable.
      --weights checkpoint|int8: the CPU engine reads the checkpoint's weights as stored (the default),
      or quantizes them to int8 at load, one scale per row (1.5-2x the batch-1 speed, small error; docs/perf.md).
      --model ORG/NAME is read from the local Hugging Face cache ($HF_HUB_CACHE, else $HF_HOME/hub,
      else ~/.cache/huggingface/hub), at refs/main or @REVISION (a branch, tag or commit).
      """;

  private final PrintStream out;
  private final PrintStream err;

  LlamaCli(PrintStream out, PrintStream err) {
    this.out = out;
    this.err = err;
  }

  public static void main(String[] argv) {
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    PrintStream err = new PrintStream(System.err, true, StandardCharsets.UTF_8);
    System.exit(new LlamaCli(out, err).run(argv));
  }

  /** Runs one command; returns the exit status (0 ok, 1 failure, 2 bad command line). */
  int run(String[] argv) {
    if (argv.length == 0 || argv[0].equals("--help") || argv[0].equals("-h") || argv[0].equals("help")) {
      out.print(USAGE);
      return argv.length == 0 ? 2 : 0;
    }
    try {
      switch (argv[0]) {
        case "tokenize" -> tokenize(new Args(argv, 1, Set.of("model", "text"), Set.of("no-special-tokens", "json")));
        case "detokenize" -> detokenize(new Args(argv, 1, Set.of("model", "ids"), Set.of("skip-special-tokens", "json")));
        case "chat-template" -> chatTemplate(new Args(argv, 1, Set.of("model", "messages"),
            Set.of("add-generation-prompt", "parse-special-tokens", "json")));
        case "generate" -> generate(new Args(argv, 1,
            Set.of("model", "prompt", "chat", "system", "prompt-ids", "seed", "max-new-tokens", "temperature", "top-k",
                "top-p", "repetition-penalty", "engine", "threads", "weights"),
            Set.of("greedy", "json", "parse-special-tokens")));
        case "logits" -> logits(new Args(argv, 1, Set.of("model", "prompt-ids", "engine", "threads", "weights"), Set.of("json")));
        default -> throw new Args.UsageException("unknown command '" + argv[0] + "'");
      }
      return 0;
    } catch (Args.UsageException e) {
      err.println("llama: " + e.getMessage());
      err.print(USAGE);
      return 2;
    } catch (CheckpointException | InvalidRequestException | ChatTemplate.TemplateException | IllegalArgumentException
        | CudaUnavailableException | CudaException e) {
      err.println("llama: error: " + e.getMessage());
      return 1;
    } catch (IOException e) {
      err.println("llama: error: " + e);
      return 1;
    }
  }

  private static ModelDirectory model(Args args) {
    return ModelDirectory.open(args.required("model"));
  }

  private void tokenize(Args args) {
    ModelDirectory model = model(args);
    try (Tokenizer tokenizer = model.tokenizer()) {
      int[] ids = tokenizer.encode(args.required("text"), !args.flag("no-special-tokens"));
      if (args.flag("json")) {
        ObjectNode result = JSON.createObjectNode();
        result.set("ids", intArray(ids));
        result.put("count", ids.length);
        print(result);
      } else {
        out.println(join(ids));
      }
    }
  }

  private void detokenize(Args args) {
    ModelDirectory model = model(args);
    try (Tokenizer tokenizer = model.tokenizer()) {
      String text = tokenizer.decode(args.ids("ids"), args.flag("skip-special-tokens"));
      if (args.flag("json")) {
        print(JSON.createObjectNode().put("text", text));
      } else {
        out.println(text);
      }
    }
  }

  private void chatTemplate(Args args) throws IOException {
    ModelDirectory model = model(args);
    List<ChatMessage> messages = readMessages(Path.of(args.required("messages")));
    try (Tokenizer tokenizer = model.tokenizer()) {
      PromptEncoder.EncodedPrompt prompt = promptEncoder(model, tokenizer, args).encode(messages, args.flag("add-generation-prompt"));
      if (args.flag("json")) {
        ObjectNode result = JSON.createObjectNode();
        result.put("prompt", prompt.text());
        result.set("ids", intArray(prompt.ids()));
        print(result);
      } else {
        out.print(prompt.text());
        out.flush();
      }
    }
  }

  private static PromptEncoder promptEncoder(ModelDirectory model, Tokenizer tokenizer, Args args) {
    return new PromptEncoder(model.chatTemplate(), tokenizer, specialTokens(args));
  }

  /** As the job's {@code --specialTokens}: special-token text in a prompt stays text unless asked otherwise. */
  private static PromptEncoder.SpecialTokens specialTokens(Args args) {
    return args.flag("parse-special-tokens") ? PromptEncoder.SpecialTokens.PARSE : PromptEncoder.SpecialTokens.PLAIN;
  }

  static List<ChatMessage> readMessages(Path file) throws IOException {
    JsonNode root;
    try {
      root = JSON.readTree(Files.readString(file));
    } catch (IOException e) {
      throw new IllegalArgumentException(file + ": not a JSON file of messages: " + e.getMessage());
    }
    JsonNode list = root != null && root.isObject() ? root.get("messages") : root;
    if (list == null || !list.isArray() || list.isEmpty()) {
      throw new IllegalArgumentException(file + ": expected a non-empty JSON array of {\"role\", \"content\"} (or {\"messages\": [...]})");
    }
    List<ChatMessage> messages = new ArrayList<>();
    for (JsonNode m : list) {
      if (!m.path("role").isTextual() || !m.path("content").isTextual()) {
        throw new IllegalArgumentException(file + ": every message needs string \"role\" and \"content\", got " + m);
      }
      messages.add(new ChatMessage(m.get("role").asText(), m.get("content").asText()));
    }
    return messages;
  }

  private void generate(Args args) {
    ModelDirectory model = model(args);
    int sources = (args.has("prompt") ? 1 : 0) + (args.has("chat") ? 1 : 0) + (args.has("prompt-ids") ? 1 : 0);
    if (sources != 1) {
      throw new Args.UsageException("give exactly one of --prompt, --chat, --prompt-ids");
    }
    if (args.has("system") && !args.has("chat")) {
      throw new Args.UsageException("--system goes with --chat");
    }
    for (String drawOnly : List.of("temperature", "top-k", "top-p")) {
      if (args.flag("greedy") && args.has(drawOnly)) {
        throw new Args.UsageException("--" + drawOnly + " shapes a random draw; --greedy takes the argmax and would ignore it");
      }
    }
    SamplingParams params = samplingParams(args);
    if (model.isDemo()) {
      err.println("llama: note: " + model.path() + " is the demo checkpoint (random weights): its text is gibberish");
    }
    Tokenizer tokenizer = args.has("prompt-ids") && !Files.exists(model.path().resolve(Tokenizer.FILE)) ? null : model.tokenizer();
    try {
      int[] promptIds = promptIds(model, tokenizer, args);
      EngineOptions options = engineOptions(args).withMaxNumSeqs(1);
      try (LlmEngine engine = Engines.create(model, engineKind(args), options)) {
        StreamingDecoder stream = tokenizer == null || args.flag("json") ? null : new StreamingDecoder(tokenizer, true);
        GenerationResult result = engine.submit(new GenerationRequest("cli", promptIds, params),
            token -> {
              if (stream != null) {
                out.print(stream.push(token));
                out.flush();
              }
            }).join();
        if (args.flag("json")) {
          print(generateJson(model, tokenizer, promptIds, params, result));
        } else {
          if (stream != null) {
            out.println(stream.flush());
          } else {
            out.println(join(result.tokenIds()));
          }
          err.printf("llama: %d prompt + %d generated tokens in %.2f s, finish_reason %s, seed %d%n",
              result.promptTokens(), result.completionTokens(), result.totalNanos() / 1e9, result.finishReason().label(),
              params.seed());
        }
      }
    } finally {
      if (tokenizer != null) {
        tokenizer.close();
      }
    }
  }

  private static SamplingParams samplingParams(Args args) {
    long seed = args.has("seed") ? args.longValue("seed", 0) : new java.security.SecureRandom().nextLong() >>> 1;
    SamplingParams base = args.flag("greedy") ? SamplingParams.greedy(SamplingParams.DEFAULT_MAX_NEW_TOKENS) : SamplingParams.modelCard(seed);
    return base
        .withSeed(seed)
        .withMaxNewTokens(args.intValue("max-new-tokens", base.maxNewTokens()))
        .withTemperature(args.doubleValue("temperature", base.temperature()))
        .withTopK(args.intValue("top-k", base.topK()))
        .withTopP(args.doubleValue("top-p", base.topP()))
        .withRepetitionPenalty(args.doubleValue("repetition-penalty", base.repetitionPenalty()));
  }

  private static int[] promptIds(ModelDirectory model, Tokenizer tokenizer, Args args) {
    if (args.has("prompt-ids")) {
      return args.ids("prompt-ids");
    }
    if (args.has("prompt")) {
      return PromptEncoder.withoutTemplate(tokenizer, specialTokens(args)).encode(args.get("prompt"));
    }
    List<ChatMessage> messages = new ArrayList<>();
    String system = args.has("system") ? args.get("system") : ChatMessage.MODEL_CARD_SYSTEM_PROMPT;
    if (!system.isEmpty()) {
      messages.add(ChatMessage.system(system));
    }
    messages.add(ChatMessage.user(args.get("chat")));
    return promptEncoder(model, tokenizer, args).encode(messages, true).ids();
  }

  private static ObjectNode generateJson(ModelDirectory model, Tokenizer tokenizer, int[] promptIds, SamplingParams params, GenerationResult result) {
    ObjectNode json = JSON.createObjectNode();
    json.put("model", model.name());
    json.set("prompt_ids", intArray(promptIds));
    json.put("prompt_tokens", result.promptTokens());
    if (tokenizer != null) {
      json.put("completion", tokenizer.decode(result.tokenIds(), true));
    } else {
      json.putNull("completion");
    }
    json.set("token_ids", intArray(result.tokenIds()));
    json.put("completion_tokens", result.completionTokens());
    json.put("finish_reason", result.finishReason().label());
    json.put("seed", params.seed());
    ObjectNode sampling = json.putObject("sampling");
    sampling.put("greedy", params.isGreedy());
    params.putSettings(sampling);
    json.put("latency_ms", result.totalNanos() / 1e6);
    return json;
  }

  private static Engines.Kind engineKind(Args args) {
    try {
      return args.has("engine") ? EnumOption.parse(Engines.Kind.class, "engine", args.get("engine")) : Engines.Kind.AUTO;
    } catch (IllegalArgumentException e) {
      throw new Args.UsageException(e.getMessage());
    }
  }

  private static EngineOptions engineOptions(Args args) {
    EngineOptions defaults = EngineOptions.defaults();
    try {
      return defaults.withThreads(args.intValue("threads", defaults.threads()))
          .withWeights(args.has("weights") ? EnumOption.parse(EngineOptions.Weights.class, "weights", args.get("weights")) : defaults.weights());
    } catch (IllegalArgumentException e) {
      throw new Args.UsageException(e.getMessage());
    }
  }

  private void logits(Args args) {
    ModelDirectory model = model(args);
    int[] ids = args.ids("prompt-ids");
    EngineOptions options = engineOptions(args);
    try (LlmEngine engine = Engines.create(model, engineKind(args), options)) {
      float[][] logits = engine.promptLogits(ids);
      if (args.flag("json")) {
        ObjectNode json = JSON.createObjectNode();
        json.set("prompt_ids", intArray(ids));
        ArrayNode rows = json.putArray("logits");
        for (float[] row : logits) {
          ArrayNode r = rows.addArray();
          for (float v : row) {
            r.add(v);
          }
        }
        print(json);
      } else {
        for (float[] row : logits) {
          StringBuilder line = new StringBuilder();
          for (int i = 0; i < row.length; i++) {
            line.append(i == 0 ? "" : " ").append(row[i]);
          }
          out.println(line);
        }
      }
    }
  }

  private static ArrayNode intArray(int[] ids) {
    ArrayNode array = JSON.createArrayNode();
    for (int id : ids) {
      array.add(id);
    }
    return array;
  }

  private static String join(int[] ids) {
    StringBuilder s = new StringBuilder();
    for (int i = 0; i < ids.length; i++) {
      s.append(i == 0 ? "" : ",").append(ids[i]);
    }
    return s.toString();
  }

  private void print(JsonNode json) {
    out.println(json.toString());
    out.flush();
  }
}
