/*
 * mlTrain: run `mlsteps train` (a training image as an MLflow run) and return its outputs.
 *
 *   def result = mlTrain(image: 'trainer:1.2', command: ['python', 'train.py'], gpus: 'all')
 *   echo "MLflow run ${result['run-id']}"
 *
 * Keys are the `mlsteps train` options in camelCase (option `shm-size` is key `shmSize`); see
 * mlTrain.txt. Behaviour lives in mlsteps: this step only builds the command line, runs it and
 * reads back the outputs file mlsteps writes.
 */

import mlsteps.jenkins.Cli

def call(Map userConfig = [:]) {
    Map defaultConfig = [
        image: null,          // training image to run (required unless set in the config file)
        command: [],          // command and arguments run in the container: a List, or one String of shell words
        backend: null,        // 'docker' runs the image, 'local' runs the command as a local process (mlsteps: docker)
        workdir: null,        // working directory in the container
        env: [],              // environment for the training process: a List of 'KEY=VALUE' or a Map
        secretEnv: [],        // names of variables passed in as secrets (withCredentials); read as /run/secrets/NAME
        secretsAsEnv: null,   // true: secrets as environment variables, which docker inspect shows (mlsteps: false)
        mount: [],            // bind mounts: a List of 'host:container[:ro]'
        dataDir: null,        // data directory, mounted read-only at /data; its digest is tagged on the run
        outputDir: null,      // directory mounted at /output
        gpus: null,           // GPU request: 'all', a count, device ids such as '0,2', 'none' or 'auto' (mlsteps: none)
        shmSize: null,        // size of /dev/shm, e.g. '1g'
        memory: null,         // memory limit, e.g. '4g'
        cpus: null,           // CPU limit, e.g. 1.5
        user: null,           // user in the container
        network: null,        // Docker network (mlsteps: host when the tracking URI is on loopback)
        timeout: null,        // stop the training after this long, e.g. '90s', '30m', '2h'
        pull: null,           // pull policy: 'always', 'missing' or 'never' (mlsteps: missing)
        label: [],            // extra container labels: a List of 'key=value' or a Map
        platform: null,       // image platform, e.g. 'linux/amd64'
        runId: null,          // continue this MLflow run instead of creating a new one
        runName: null,        // name of the new MLflow run
        trackingUri: null,    // MLflow tracking URI (else MLSTEPS_MLFLOW_TRACKING_URI or MLFLOW_TRACKING_URI)
        experiment: null,     // MLflow experiment name
        config: null,         // path of an mlsteps.yaml (mlsteps: ./mlsteps.yaml when present)
        mlsteps: 'mlsteps',   // the mlsteps executable: a path, or a List of words such as ['python3', '-m', 'steps']
    ]
    Cli cli = new Cli(this, 'mlTrain')
    // The forms a key's value may take; keys not listed take one String or number.
    Map<String, String> forms = [command: Cli.WORDS, mlsteps: Cli.WORDS, env: Cli.PAIRS, label: Cli.PAIRS,
                                 secretEnv: Cli.WORDS, mount: Cli.WORDS, secretsAsEnv: Cli.BOOLEAN]
    String problem = cli.invalidKeys(userConfig, defaultConfig, forms, Cli.SCALAR)
    if (problem) {
        error problem
    }
    Map config = defaultConfig + userConfig

    // Values that are not `train` flags travel as the environment mlsteps reads; withEnv does not
    // pass them through a shell, so they need no quoting.
    List<String> environment = []
    if (config.trackingUri) {
        environment << "MLSTEPS_MLFLOW_TRACKING_URI=${config.trackingUri}".toString()
    }
    if (config.experiment) {
        environment << "MLSTEPS_MLFLOW_EXPERIMENT=${config.experiment}".toString()
    }
    if (config.command instanceof CharSequence && config.command) {
        environment << "MLSTEPS_TRAIN_COMMAND=${config.command}".toString()
    }

    int status = cli.run('train', trainCommand(config, defaultConfig), environment, null)
    Map outputs = cli.outputs()
    cli.archiveSummary()
    if (status != 0) {
        error cli.failure('train', status, [:]) + trainDetails(outputs)
    }
    return outputs
}

// The flags, then a List command after `--` (a String one travels as MLSTEPS_TRAIN_COMMAND).
@NonCPS
private static String trainCommand(Map config, Map defaultConfig) {
    // Keys that are not `mlsteps train` flags.
    List<String> notFlags = ['command', 'trackingUri', 'experiment', 'config', 'mlsteps']
    List<String> words = Cli.command(config, ['train']) + Cli.flags(config, Cli.flagKeys(defaultConfig, notFlags))
    if (config.command instanceof List && config.command) {
        words << '--'
        words.addAll(Cli.items(config.command))
    }
    return Cli.shellLine(words)
}

// What the outputs tell of a failed training, after the exit code's message.
@NonCPS
private static String trainDetails(Map outputs) {
    List<String> details = []
    if (outputs['exit-code']) {
        details << "training command exit code ${outputs['exit-code']}"
    }
    if (outputs['run-id']) {
        details << "MLflow run ${outputs['run-id']}"
    }
    return details ? " [${details.join(', ')}]" : ''
}
