package dev.beamllama.model;

import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;
import dev.beamllama.model.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The local Hugging Face hub cache that {@code hf download} / {@code huggingface-cli download} fill,
 * and how a model id ({@code org/name}, optionally {@code org/name@revision}) finds its snapshot
 * there. Nothing is downloaded: a job must not depend on the network, and a cluster's workers must
 * all read the same files.
 *
 * <p>The cache directory follows huggingface_hub: {@code $HF_HUB_CACHE} (or its old name
 * {@code $HUGGINGFACE_HUB_CACHE}), else {@code $HF_HOME/hub}, else
 * {@code $XDG_CACHE_HOME/huggingface/hub}, else {@code ~/.cache/huggingface/hub}. A model lives in
 * {@code models--org--name/}: {@code refs/<branch>} holds a commit hash, {@code snapshots/<commit>/}
 * the files (symbolic links into {@code blobs/}, which are read through).
 */
public final class HuggingFaceCache {
  /** A Hub repo id, as huggingface_hub validates it: one optional owner, word characters, '.' and '-'. */
  private static final Pattern ID = Pattern.compile("[A-Za-z0-9_][\\w.-]*(/[A-Za-z0-9_][\\w.-]*)?");
  /** A branch, tag or commit: one path segment, never {@code .} or {@code ..}. */
  private static final Pattern REVISION = Pattern.compile("(?!\\.\\.?$)[\\w.-]+");
  private static final String DEFAULT_REVISION = "main";

  private final Path hub;
  private final String origin;

  private HuggingFaceCache(Path hub, String origin) {
    this.hub = hub.toAbsolutePath().normalize();
    this.origin = origin;
  }

  /** The cache this process's environment names. */
  public static HuggingFaceCache fromEnvironment() {
    return fromEnvironment(System.getenv(), Path.of(System.getProperty("user.home")));
  }

  /** The cache {@code env} names; injectable so tests need not touch the process environment. */
  public static HuggingFaceCache fromEnvironment(Map<String, String> env, Path home) {
    for (String variable : new String[] {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"}) {
      String value = env.get(variable);
      if (value != null && !value.isBlank()) {
        return new HuggingFaceCache(expandHome(value, home), "$" + variable);
      }
    }
    String hfHome = env.get("HF_HOME");
    if (hfHome != null && !hfHome.isBlank()) {
      return new HuggingFaceCache(expandHome(hfHome, home).resolve("hub"), "$HF_HOME/hub");
    }
    String xdg = env.get("XDG_CACHE_HOME");
    if (xdg != null && !xdg.isBlank()) {
      return new HuggingFaceCache(expandHome(xdg, home).resolve("huggingface/hub"), "$XDG_CACHE_HOME/huggingface/hub");
    }
    return new HuggingFaceCache(home.resolve(".cache/huggingface/hub"),
        "~/.cache/huggingface/hub, as HF_HUB_CACHE and HF_HOME are unset");
  }

  /** The hub cache directory ({@code .../huggingface/hub}). */
  public Path hub() {
    return hub;
  }

  /**
   * True when {@code model} could be a Hub id: {@code name} or {@code org/name}, optionally
   * {@code @revision}. Paths such as {@code ./x}, {@code /x} or {@code a/b/c} never are.
   */
  public static boolean isModelId(String model) {
    int at = model.indexOf('@');
    String id = at < 0 ? model : model.substring(0, at);
    return ID.matcher(id).matches() && !id.contains("--") && !id.contains("..")
        && (at < 0 || REVISION.matcher(model.substring(at + 1)).matches());
  }

  /**
   * The snapshot directory of {@code model} ({@code org/name} or {@code org/name@revision}, the
   * revision a branch or tag in {@code refs/} or a commit hash). Without a revision it is
   * {@code refs/main}'s commit or, when the cache has no {@code refs/main}, the only snapshot.
   *
   * @throws CheckpointException naming where it looked and how to download the model, when the
   *     model is not cached, the revision is ambiguous or unknown, or the snapshot lacks a file
   */
  public Path resolve(String model) {
    if (!isModelId(model)) {
      throw new CheckpointException("'" + model + "' is not a Hugging Face model id (org/name or org/name@revision)");
    }
    int at = model.indexOf('@');
    String id = at < 0 ? model : model.substring(0, at);
    Optional<String> revision = at < 0 ? Optional.empty() : Optional.of(model.substring(at + 1));
    Path repo = hub.resolve(repoFolder(id));
    if (!Files.isDirectory(repo)) {
      throw new CheckpointException("model '" + model + "' is neither a local directory ("
          + Path.of(model).toAbsolutePath().normalize() + ") nor in the Hugging Face cache: looked for " + repo
          + " (the cache is " + origin + "). " + howToGet(id, revision));
    }
    Path snapshot = snapshot(model, id, repo, revision);
    List<String> missing = missingFiles(snapshot);
    if (!missing.isEmpty()) {
      throw new CheckpointException("model '" + model + "' in the Hugging Face cache is incomplete: " + snapshot + " lacks "
          + String.join(", ", missing) + " (or links to a blob that was never downloaded). " + howToGet(id, revision));
    }
    return snapshot;
  }

  /** {@code org/name} is cached as {@code models--org--name}. */
  static String repoFolder(String id) {
    return "models--" + id.replace("/", "--");
  }

  private Path snapshot(String model, String id, Path repo, Optional<String> revision) {
    Path snapshots = repo.resolve("snapshots");
    String wanted = revision.orElse(DEFAULT_REVISION);
    Path ref = repo.resolve("refs").resolve(wanted);
    if (Files.isRegularFile(ref)) {
      String commit = readRef(ref);
      Path snapshot = snapshots.resolve(commit);
      if (!Files.isDirectory(snapshot)) {
        throw new CheckpointException("model '" + model + "': " + ref + " names commit " + commit + " but " + snapshot
            + " does not exist (an interrupted download?). " + howToGet(id, revision));
      }
      return snapshot;
    }
    if (revision.isPresent() && Files.isDirectory(snapshots.resolve(wanted))) {
      return snapshots.resolve(wanted); // a commit hash
    }
    List<String> available = list(snapshots);
    if (revision.isEmpty() && available.size() == 1) {
      return snapshots.resolve(available.get(0)); // downloaded by commit hash, so no branch was recorded
    }
    if (revision.isEmpty() && available.size() > 1) {
      throw new CheckpointException("model '" + model + "': " + repo + " has no refs/main and " + available.size()
          + " snapshots (" + String.join(", ", available) + "): name one, e.g. --model=" + id + "@" + available.get(0));
    }
    if (available.isEmpty()) {
      throw new CheckpointException("model '" + model + "': " + snapshots + " holds no snapshot. " + howToGet(id, revision));
    }
    throw new CheckpointException("model '" + model + "': revision '" + wanted + "' is neither a ref in " + repo.resolve("refs")
        + " (" + describe(list(repo.resolve("refs"))) + ") nor a snapshot in " + snapshots + " (" + describe(available) + "). "
        + howToGet(id, revision));
  }

  /** The files a job cannot start without, named as the Hub names them. */
  private static List<String> missingFiles(Path snapshot) {
    List<String> missing = new ArrayList<>();
    for (String file : new String[] {LlamaConfig.FILE, Tokenizer.FILE}) {
      if (!Files.isRegularFile(snapshot.resolve(file))) {
        missing.add(file);
      }
    }
    List<Path> weights = SafetensorsCheckpoint.weightFiles(snapshot);
    if (weights.isEmpty()) {
      missing.add(SafetensorsCheckpoint.SINGLE_FILE + " or " + SafetensorsCheckpoint.INDEX_FILE);
    }
    weights.stream().filter(f -> !Files.isRegularFile(f)).forEach(f -> missing.add(snapshot.relativize(f).toString()));
    return missing;
  }

  private String howToGet(String id, Optional<String> revision) {
    String command = "download " + id + revision.map(r -> " --revision " + r).orElse("") + " --include '*.json' '*.safetensors'";
    return "Download it with `huggingface-cli " + command + "` (`hf download` in huggingface_hub 0.34+), set HF_HOME or "
        + "HF_HUB_CACHE to a cache that has it, or pass a checkpoint directory.";
  }

  private static String readRef(Path ref) {
    try {
      String commit = Files.readString(ref, StandardCharsets.UTF_8).trim();
      if (!REVISION.matcher(commit).matches()) {
        throw new CheckpointException(ref + ": not a commit hash: '" + commit + "'");
      }
      return commit;
    } catch (IOException e) {
      throw new CheckpointException(ref + ": cannot read: " + e.getMessage(), e);
    }
  }

  private static List<String> list(Path dir) {
    if (!Files.isDirectory(dir)) {
      return List.of();
    }
    try (Stream<Path> entries = Files.list(dir)) {
      return entries.map(p -> p.getFileName().toString()).sorted().toList();
    } catch (IOException e) {
      throw new CheckpointException(dir + ": cannot list: " + e.getMessage(), e);
    }
  }

  private static String describe(List<String> names) {
    return names.isEmpty() ? "none" : String.join(", ", names);
  }

  private static Path expandHome(String value, Path home) {
    return value.equals("~") ? home : value.startsWith("~/") ? home.resolve(value.substring(2)) : Path.of(value);
  }

  /**
   * The Hub id of a snapshot directory ({@code .../models--org--name/snapshots/<commit>}), so that
   * outputs name the model as the user did, wherever the cache is.
   */
  static Optional<String> idOf(Path snapshot) {
    Path snapshots = snapshot.getParent();
    Path repo = snapshots == null ? null : snapshots.getParent();
    if (repo == null || repo.getFileName() == null || !snapshots.getFileName().toString().equals("snapshots")) {
      return Optional.empty();
    }
    String folder = repo.getFileName().toString();
    if (!folder.startsWith("models--") || folder.length() == "models--".length()) {
      return Optional.empty();
    }
    return Optional.of(folder.substring("models--".length()).replace("--", "/"));
  }
}
