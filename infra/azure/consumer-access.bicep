// A consumer's access to its own secret only: Key Vault Secrets User on tok-<consumer> (a token
// prefetchtokens keeps fresh), svc-<service>-active (the active key of a key-mode service) or
// aml-<endpoint>-active (the active key of an Azure ML endpoint the app rotates,
// docs/endpoints.md), never on the vault. The secret must exist: deploy this after the app has
// written it (the first prefetchtokens run, the first get_keys of the service or endpoint, or the
// first rotatekeys run).
//
//   az deployment group create -g <rg> -f infra/azure/consumer-access.bicep \
//     -p keyVaultName=<vault> secretName=tok-batch principalId=<consumer's object id>

@description('The vault of main.bicep (its keyVaultName output).')
param keyVaultName string

@description('The one secret the consumer reads: tok-<consumer>, svc-<service>-active or aml-<endpoint>-active.')
param secretName string

@description('The object id of the consumer: a managed identity, a service principal or a group.')
param principalId string

@description('What principalId is.')
@allowed(['ServicePrincipal', 'User', 'Group'])
param principalType string = 'ServicePrincipal'

// Key Vault Secrets User: read a secret's value, nothing else.
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

var isToken = startsWith(secretName, 'tok-')
var isActiveKey = startsWith(secretName, 'svc-') && endsWith(secretName, '-active')
var isEndpointActiveKey = startsWith(secretName, 'aml-') && endsWith(secretName, '-active')

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName

  resource secret 'secrets' existing = {
    name: secretName
  }
}

// Refused for any other secret: the keys' own secrets (svc-*-primary/-secondary,
// aml-*-primary/-secondary), the signing key and the administrator key are the app's alone.
resource consumerRead 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isToken || isActiveKey || isEndpointActiveKey) {
  name: guid(vault::secret.id, principalId, keyVaultSecretsUser)
  scope: vault::secret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: principalType
  }
}

output assigned bool = isToken || isActiveKey || isEndpointActiveKey
