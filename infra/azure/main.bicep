// modelauth on Azure Functions, stage 1 of 2: a Linux Flex Consumption function app running the
// custom handler, its storage, Key Vault, identity, monitoring and alert. Deploy it, zip-deploy
// the app (`make package`), then deploy eventgrid.bicep (stage 2), whose subscription needs the
// keyvaultevents function to exist. See README.md, "Deploying to Azure".
//
//   az deployment group create -g <rg> -f infra/azure/main.bicep -p @infra/azure/main.parameters.example.json
//
// `az bicep build -f infra/azure/main.bicep` checks this file where the Bicep CLI is installed.

@description('A short name the resource names start with: lower-case letters, digits and hyphens.')
@minLength(3)
@maxLength(11)
param name string = 'modelauth'

@description('The region of every resource.')
param location string = resourceGroup().location

@description('The most instances Flex Consumption may scale out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of each instance, in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('MODELAUTH_ISSUER: the URL gateways reach the app at, plus /api; empty: https://<default host name>/api.')
param issuer string = ''

@description('TOKEN_SIGNING_ALG.')
@allowed(['RS256', 'ES256'])
param tokenSigningAlg string = 'RS256'

@description('ADMIN_KEY_ENABLED: false needs oidcIssuers and oidcAudiences.')
param adminKeyEnabled bool = true

@description('OIDC_ISSUERS: comma-separated issuers of callers\' tokens, such as https://login.microsoftonline.com/<tenant>/v2.0.')
param oidcIssuers string = ''

@description('OIDC_AUDIENCES: comma-separated audiences of callers\' tokens, such as api://modelauth.')
param oidcAudiences string = ''

@description('ROTATION_SCHEDULE: the rotatekeys timer, NCRONTAB with six fields, UTC.')
param rotationSchedule string = '0 0 */6 * * *'

@description('PREFETCH_SCHEDULE: the prefetchtokens timer, NCRONTAB with six fields, UTC.')
param prefetchSchedule string = '0 */5 * * * *'

@description('More app settings, or other values for those below (KEY_CACHE_TTL, for example).')
param appSettingOverrides object = {}

@description('E-mail addresses told when a rotation fails; empty: the alert fires without telling anyone.')
param alertEmails array = []

@description('How long Log Analytics keeps logs, in days.')
@minValue(30)
param logRetentionDays int = 30

@description('The ARM resource IDs of the Azure ML online endpoints whose keys the app rotates (modelauth.json\'s endpoints[].id, /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<ws>/onlineEndpoints/<name>): the app\'s identity gets the key operator role on each. See docs/endpoints.md.')
param amlEndpointIds array = []

var suffix = uniqueString(resourceGroup().id, name)
var storageName = take('st${replace(name, '-', '')}${suffix}', 24)
var vaultName = take('kv-${name}-${suffix}', 24)
var appName = '${name}-${suffix}'
var deploymentContainer = 'app-package'

// Built-in roles (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

// The custom role of the Azure ML endpoints' keys (below); its name is a GUID, fixed per group.
var amlKeyOperatorRoleName = guid(resourceGroup().id, 'modelauth-aml-endpoint-key-operator')
// The resource groups the endpoints are in: where the role may be assigned.
var amlEndpointGroups = union(map(amlEndpointIds, id => '/subscriptions/${split(id, '/')[2]}/resourceGroups/${split(id, '/')[4]}'), [])

// ---- Identity ---------------------------------------------------------------------------------

// A user-assigned identity, so that its roles exist before the app first starts.
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${appName}'
  location: location
}

// ---- Monitoring -------------------------------------------------------------------------------

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${appName}'
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: logRetentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${appName}'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // Telemetry only with the app's identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
    DisableLocalAuth: true
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---- Storage: the host's AzureWebJobsStorage and the deployment container ----------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageName
  location: location
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    // Identity only: no account keys, no connection strings.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainer
  properties: { publicAccess: 'None' }
}

// The host keeps its timer schedule monitor and locks in blobs; the deployment package is a blob.
resource storageBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---- Key Vault: the secret store ----------------------------------------------------------------

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: vaultName
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
  }
}

// Least privilege on this vault only: the app reads, writes, lists the versions of and updates
// secrets, and never deletes one. Key Vault Secrets Officer would also allow deleting and purging.
resource secretsRotatorRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'modelauth-secrets-rotator')
  properties: {
    // Role names are unique in the whole tenant.
    roleName: 'modelauth secrets rotator (${subscription().subscriptionId}/${resourceGroup().name})'
    description: 'Read, write, list versions of and update Key Vault secrets; no delete or purge.'
    type: 'CustomRole'
    assignableScopes: [resourceGroup().id]
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.KeyVault/vaults/secrets/getSecret/action'
          'Microsoft.KeyVault/vaults/secrets/setSecret/action'
          'Microsoft.KeyVault/vaults/secrets/readMetadata/action'
          'Microsoft.KeyVault/vaults/secrets/update/action'
        ]
        notDataActions: []
      }
    ]
  }
}

resource vaultRotator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, secretsRotatorRole.id)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsRotatorRole.name)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'vault-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspace.id
    logs: [
      { categoryGroup: 'audit', enabled: true }
    ]
    metrics: [
      { category: 'AllMetrics', enabled: true }
    ]
  }
}

// ---- Azure ML online endpoints: their own keys ---------------------------------------------------

// Least privilege on the endpoints named in amlEndpointIds: read one (its authMode and scoring
// URI), list its keys, regenerate one, and follow the regenerateKeys long-running operation
// (its Azure-AsyncOperation and Location polls). Not write, delete, token or score: the app never
// changes an endpoint otherwise and never scores through it (docs/endpoints.md).
resource amlKeyOperatorRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (!empty(amlEndpointIds)) {
  name: amlKeyOperatorRoleName
  properties: {
    // Role names are unique in the whole tenant.
    roleName: 'modelauth Azure ML endpoint key operator (${subscription().subscriptionId}/${resourceGroup().name})'
    description: 'Read Azure ML online endpoints, list and regenerate their keys, poll the regenerateKeys operation; no write, delete, token or score.'
    type: 'CustomRole'
    // This group (where the role is defined) and the endpoints' groups; assigned on each endpoint only.
    assignableScopes: union([resourceGroup().id], amlEndpointGroups)
    permissions: [
      {
        actions: [
          'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read'
          'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/listKeys/action'
          'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/regenerateKeys/action'
          'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/operationsstatus/read'
          'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/operationresults/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

// One assignment per endpoint, at the endpoint itself, in its own resource group (and
// subscription), which may not be this one.
module amlEndpointAccess 'aml-endpoint-access.bicep' = [
  for (id, i) in amlEndpointIds: {
    name: take('${appName}-aml-endpoint-${i}', 64)
    scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
    params: {
      endpointId: id
      principalId: identity.properties.principalId
      roleDefinitionName: amlKeyOperatorRoleName
    }
    dependsOn: [amlKeyOperatorRole]
  }
]

// ---- The function app ---------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${appName}'
  location: location
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      // The custom handler (host.json's customHandler); Flex Consumption takes the runtime from
      // here, not from FUNCTIONS_WORKER_RUNTIME.
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
  dependsOn: [packageContainer, storageBlobOwner]
}

// No FTP and no basic-auth publishing: zip deploy authenticates with Microsoft Entra ID.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  // Not in the type's schema (a Bicep warning), but deployments have failed without it.
  location: location
  properties: { allow: false }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  location: location
  properties: { allow: false }
}

// Every app setting the app reads in Azure (README.md, "Settings"; the Azure column). The host
// sets FUNCTIONS_CUSTOMHANDLER_PORT, FUNCTIONS_APP_ROOT_PATH and WEBSITE_HOSTNAME itself. An empty
// value means the default.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: app
  name: 'appsettings'
  properties: union({
    // The Functions host: its storage and telemetry, with the app's identity.
    AzureWebJobsStorage__accountName: storage.name
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identity.properties.clientId
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
    // modelauth.
    AZURE_CLIENT_ID: identity.properties.clientId
    AZURE_AUTHORITY_HOST: ''
    KEYVAULT_URL: vault.properties.vaultUri
    MODELAUTH_CONFIG: ''
    MODELAUTH_ISSUER: issuer
    KEY_CACHE_TTL: '30s'
    KEY_REFRESH_MIN_INTERVAL: '1s'
    KEY_CACHE_MAX_STALENESS: '5m'
    KEY_READ_TIMEOUT: '2s'
    SCORE_TIMEOUT: '60s'
    SCORE_MAX_BODY_BYTES: '10485760'
    LOG_LEVEL: 'info'
    ROTATION_SCHEDULE: rotationSchedule
    PREFETCH_SCHEDULE: prefetchSchedule
    PREFETCH_LEAD: ''
    TOKEN_SIGNING_ALG: tokenSigningAlg
    TOKEN_LEEWAY: '60s'
    TOKEN_MAX_BYTES: '8192'
    TOKEN_CACHE_SIZE: '10000'
    SIGNING_KEY_ROTATION_PERIOD: '720h'
    ADMIN_KEY_ENABLED: string(adminKeyEnabled)
    OIDC_ISSUERS: oidcIssuers
    OIDC_AUDIENCES: oidcAudiences
    ENDPOINT_SETTLE_DELAY: '30s'
    ENDPOINT_OPERATION_TIMEOUT: '10m'
    ENDPOINT_POLL_INTERVAL: '5s'
  }, appSettingOverrides)
  dependsOn: [vaultRotator, metricsPublisher]
}

// ---- The alert: a failed rotation ---------------------------------------------------------------

resource alertGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmails)) {
  name: 'ag-${appName}'
  location: 'global'
  properties: {
    groupShortName: 'modelauth'
    enabled: true
    emailReceivers: [
      for (email, i) in alertEmails: {
        name: 'email-${i}'
        emailAddress: email
        useCommonAlertSchema: true
      }
    ]
  }
}

// The handler's JSON log lines reach Application Insights as traces; a rotation_failed (or
// signing_key_rotation_failed) event means a key was not rotated and an operator must look, and
// an endpoint_key_drift event that an Azure ML endpoint's keys differed from the vault's and were
// repaired (a late operation, or a key regenerated outside the app: docs/endpoints.md).
resource rotationFailedAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-${appName}-rotation-failed'
  location: location
  properties: {
    displayName: 'modelauth: a key rotation failed'
    description: 'The rotatekeys timer, an event or a manual call logged rotation_failed, signing_key_rotation_failed or endpoint_key_drift.'
    severity: 1
    enabled: true
    scopes: [workspace.id]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    // Stateful: one notification per failure, though a line stays in three windows.
    autoMitigate: true
    // AppTraces exists only once the app has logged.
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: '''
AppTraces
| where Message contains '"msg":"rotation_failed"' or Message contains '"msg":"signing_key_rotation_failed"' or Message contains '"msg":"endpoint_key_drift"'
'''
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: empty(alertEmails) ? [] : [alertGroup.id]
    }
  }
  dependsOn: [appInsights]
}

output functionAppName string = app.name
output defaultHostName string = app.properties.defaultHostName
output issuer string = empty(issuer) ? 'https://${app.properties.defaultHostName}/api' : issuer
output keyVaultName string = vault.name
output keyVaultUri string = vault.properties.vaultUri
output identityPrincipalId string = identity.properties.principalId
output storageAccountName string = storage.name
